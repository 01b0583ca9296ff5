#include "common/storage/stream_reader.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

namespace registry::storage {

namespace {

constexpr size_t k_buffer = 8 << 20;   // bytes the stream reads ahead
constexpr size_t k_chunk = 256 << 10;  // bytes gathered per hand-over (and that wake the reader)

} // namespace

struct StreamingBlobReader::Stream {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::string> chunks;
  size_t buffered = 0;
  bool done = false;
  bool cancelled = false;
  std::optional<Error> failure;
  std::thread thread;
};

StreamingBlobReader::StreamingBlobReader(uint64_t size, std::string what, RangeFetch fetch)
  : m_size(size), m_what(std::move(what)), m_fetch(std::move(fetch))
{
}

StreamingBlobReader::~StreamingBlobReader()
{
  stop();
}

uint64_t
StreamingBlobReader::size() const
{
  return m_size;
}

Result<size_t>
StreamingBlobReader::read_at(uint64_t offset, char* buffer, size_t size)
{
  if (offset >= m_size || size == 0) {
    return size_t{0};
  }
  Error last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!m_stream || m_position != offset) {
      stop();
      start(offset);
    }
    auto n = take(buffer, size);
    if (n) {
      m_position += *n;
      return n;
    }
    if (n.error().code == ErrorCode::not_found) {
      return n;
    }
    last = n.take_error();
    stop(); // retry from `offset` with a new request
  }
  return fail(ErrorCode::io_error, last.message);
}

void
StreamingBlobReader::start(uint64_t offset)
{
  m_stream = std::make_unique<Stream>();
  m_position = offset;
  Stream* stream = m_stream.get();
  stream->thread = std::thread([this, stream, offset] {
    auto result = m_fetch(offset, [stream](const char* data, size_t n) {
      std::unique_lock lock(stream->mutex);
      stream->cv.wait(lock, [&] { return stream->cancelled || stream->buffered < k_buffer; });
      if (stream->cancelled) {
        return false;
      }
      // The HTTP client delivers a few KiB at a time: gather them into larger
      // chunks, and wake the reader once per chunk rather than per piece.
      if (stream->chunks.empty() || stream->chunks.back().size() >= k_chunk) {
        stream->chunks.emplace_back();
        stream->chunks.back().reserve(k_chunk);
      }
      stream->chunks.back().append(data, n);
      stream->buffered += n;
      if (stream->buffered >= k_chunk) {
        stream->cv.notify_all();
      }
      return true;
    });
    std::lock_guard lock(stream->mutex);
    if (!result && !stream->cancelled) {
      stream->failure = result.take_error();
    }
    stream->done = true;
    stream->cv.notify_all();
  });
}

void
StreamingBlobReader::stop()
{
  if (!m_stream) {
    return;
  }
  {
    std::lock_guard lock(m_stream->mutex);
    m_stream->cancelled = true;
  }
  m_stream->cv.notify_all();
  if (m_stream->thread.joinable()) {
    m_stream->thread.join();
  }
  m_stream.reset();
  m_current.clear();
  m_current_used = 0;
}

// Copies from the chunk taken last; takes the next one (under the lock) when it
// is used up, so the copying never holds the stream back.
Result<size_t>
StreamingBlobReader::take(char* buffer, size_t size)
{
  if (m_current_used == m_current.size()) {
    Stream& s = *m_stream;
    std::unique_lock lock(s.mutex);
    s.cv.wait(lock, [&] { return s.buffered >= k_chunk || s.done; });
    if (s.buffered == 0) {
      if (s.failure) {
        return fail(*s.failure);
      }
      return fail(ErrorCode::io_error, m_what + " ended early at byte " + std::to_string(m_position));
    }
    m_current = std::move(s.chunks.front());
    s.chunks.pop_front();
    m_current_used = 0;
    s.buffered -= m_current.size();
    s.cv.notify_all();
  }
  size_t n = std::min(size, m_current.size() - m_current_used);
  std::memcpy(buffer, m_current.data() + m_current_used, n);
  m_current_used += n;
  return n;
}

} // namespace registry::storage
