#include "common/util/zstd.hpp"

#include <zstd.h>

#include <vector>

namespace registry::util {

namespace {

constexpr int k_job_size = 4 << 20;

} // namespace

bool
is_zstd_magic(std::string_view prefix)
{
  return prefix.size() >= 4 && static_cast<unsigned char>(prefix[0]) == 0x28
         && static_cast<unsigned char>(prefix[1]) == 0xB5
         && static_cast<unsigned char>(prefix[2]) == 0x2F
         && static_cast<unsigned char>(prefix[3]) == 0xFD;
}

struct ZstdOutputStream::Impl {
  OutputStream& next;
  ZSTD_CCtx* cctx = nullptr;
  std::vector<char> out = std::vector<char>(ZSTD_CStreamOutSize());

  explicit Impl(OutputStream& n) : next(n) {}
  ~Impl() { ZSTD_freeCCtx(cctx); }

  // Runs the compressor over `input` with `mode` until zstd says it is done.
  Result<void>
  pump(ZSTD_inBuffer& input, ZSTD_EndDirective mode)
  {
    while (true) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      size_t remaining = ZSTD_compressStream2(cctx, &output, &input, mode);
      if (ZSTD_isError(remaining)) {
        return fail(ErrorCode::internal,
                    std::string("zstd compression failed: ") + ZSTD_getErrorName(remaining));
      }
      if (output.pos > 0) {
        REGISTRY_TRY(next.write(out.data(), output.pos));
      }
      bool drained = mode == ZSTD_e_continue ? input.pos == input.size : remaining == 0;
      if (drained) {
        return ok();
      }
    }
  }
};

ZstdOutputStream::ZstdOutputStream(std::unique_ptr<Impl> impl, bool multithreaded)
  : m_impl(std::move(impl)),
    m_multithreaded(multithreaded)
{
}

ZstdOutputStream::~ZstdOutputStream() = default;

Result<std::unique_ptr<ZstdOutputStream>>
ZstdOutputStream::create(OutputStream& next, int level, int workers)
{
  auto impl = std::make_unique<Impl>(next);
  impl->cctx = ZSTD_createCCtx();
  if (!impl->cctx) {
    return fail(ErrorCode::internal, "cannot create a zstd context");
  }
  size_t rc = ZSTD_CCtx_setParameter(impl->cctx, ZSTD_c_compressionLevel, level);
  if (ZSTD_isError(rc)) {
    return fail(ErrorCode::invalid_argument,
                "invalid zstd level " + std::to_string(level) + ": " + ZSTD_getErrorName(rc));
  }
  (void)ZSTD_CCtx_setParameter(impl->cctx, ZSTD_c_checksumFlag, 1);
  bool multithreaded = false;
  if (workers > 0) {
    // A library built without ZSTD_MULTITHREAD rejects this; stay single-threaded.
    multithreaded = !ZSTD_isError(ZSTD_CCtx_setParameter(impl->cctx, ZSTD_c_nbWorkers, workers));
    if (multithreaded) {
      // Bounds the input each worker buffers (the default grows with the
      // window): memory stays near workers x 2 x job size.
      (void)ZSTD_CCtx_setParameter(impl->cctx, ZSTD_c_jobSize, k_job_size);
    }
  }
  return std::unique_ptr<ZstdOutputStream>(new ZstdOutputStream(std::move(impl), multithreaded));
}

Result<void>
ZstdOutputStream::write(const char* data, size_t size)
{
  ZSTD_inBuffer input{data, size, 0};
  return m_impl->pump(input, ZSTD_e_continue);
}

Result<void>
ZstdOutputStream::finish()
{
  ZSTD_inBuffer input{nullptr, 0, 0};
  REGISTRY_TRY(m_impl->pump(input, ZSTD_e_end));
  return m_impl->next.finish();
}

struct ZstdInputStream::Impl {
  InputStream& source;
  ZSTD_DCtx* dctx = nullptr;
  std::vector<char> in = std::vector<char>(ZSTD_DStreamInSize());
  ZSTD_inBuffer input{in.data(), 0, 0};
  size_t last_hint = 0; // 0 after a complete frame
  bool source_done = false;
  bool any_input = false;
  bool pending_flush = false;

  explicit Impl(InputStream& s) : source(s) {}
  ~Impl() { ZSTD_freeDCtx(dctx); }
};

ZstdInputStream::ZstdInputStream(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

ZstdInputStream::~ZstdInputStream() = default;

Result<std::unique_ptr<ZstdInputStream>>
ZstdInputStream::create(InputStream& source)
{
  auto impl = std::make_unique<Impl>(source);
  impl->dctx = ZSTD_createDCtx();
  if (!impl->dctx) {
    return fail(ErrorCode::internal, "cannot create a zstd context");
  }
  return std::unique_ptr<ZstdInputStream>(new ZstdInputStream(std::move(impl)));
}

Result<size_t>
ZstdInputStream::read(char* buffer, size_t size)
{
  Impl& s = *m_impl;
  while (true) {
    // After an output buffer was filled, zstd may hold more output: drain it
    // before asking for input.
    bool need_input = s.input.pos == s.input.size && !s.pending_flush;
    if (need_input && !s.source_done) {
      REGISTRY_TRY_ASSIGN(size_t n, s.source.read(s.in.data(), s.in.size()));
      s.input = ZSTD_inBuffer{s.in.data(), n, 0};
      if (n == 0) {
        s.source_done = true;
      } else {
        s.any_input = true;
      }
      continue;
    }
    if (need_input && s.source_done) {
      if (s.last_hint != 0 || !s.any_input) {
        return fail(ErrorCode::corrupt, "the zstd stream is truncated");
      }
      return size_t{0};
    }
    ZSTD_outBuffer output{buffer, size, 0};
    size_t hint = ZSTD_decompressStream(s.dctx, &output, &s.input);
    if (ZSTD_isError(hint)) {
      return fail(ErrorCode::corrupt,
                  std::string("the zstd stream is corrupt: ") + ZSTD_getErrorName(hint));
    }
    s.last_hint = hint;
    s.pending_flush = output.pos == output.size;
    if (output.pos > 0) {
      return output.pos;
    }
  }
}

} // namespace registry::util
