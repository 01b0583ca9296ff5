#pragma once

// zstd streaming compression and decompression as streams (the only place that
// includes zstd.h). Used for archives, never for blob bytes: a digest names the
// bytes as pushed (DESIGN.md decision 4).

#include "common/util/stream.hpp"

#include <memory>
#include <string_view>

namespace registry::util {

// True when `prefix` starts with the zstd frame magic number (28 B5 2F FD).
bool is_zstd_magic(std::string_view prefix);

// Compresses what is written into `next`. finish() ends the frame and then
// finishes `next`. `next` must outlive the stream.
class ZstdOutputStream : public OutputStream
{
public:
  // `level` 1..19; `workers` > 0 compresses on that many threads when the
  // library was built with multithreading (otherwise silently one thread).
  // internal when zstd rejects the parameters.
  static Result<std::unique_ptr<ZstdOutputStream>> create(OutputStream& next, int level,
                                                          int workers);
  ~ZstdOutputStream() override;
  Result<void> write(const char* data, size_t size) override;
  Result<void> finish() override;
  // Whether the workers were accepted (multithreaded compression is on).
  bool
  multithreaded() const
  {
    return m_multithreaded;
  }

private:
  struct Impl;
  explicit ZstdOutputStream(std::unique_ptr<Impl> impl, bool multithreaded);
  std::unique_ptr<Impl> m_impl;
  bool m_multithreaded = false;
};

// Decompresses `source` (one or more concatenated frames). read() returns
// corrupt for damaged data and for a stream that ends inside a frame.
class ZstdInputStream : public InputStream
{
public:
  static Result<std::unique_ptr<ZstdInputStream>> create(InputStream& source);
  ~ZstdInputStream() override;
  Result<size_t> read(char* buffer, size_t size) override;

private:
  struct Impl;
  explicit ZstdInputStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

} // namespace registry::util
