#pragma once

// A BlobReader over an object store's ranged GET, shared by the S3 and Azure
// drivers: a thread streams the object from the offset asked for into a
// bounded buffer while read_at() takes from it.

#include "common/storage/blob_store.hpp"

#include <functional>
#include <memory>
#include <string>

namespace registry::storage {

// Called with each piece of the body; false when the reader stopped listening.
using RangeSink = std::function<bool(const char* data, size_t size)>;

// Sends one GET of bytes `offset` to the end and hands the body to `sink`, on
// the stream's own thread. ok once the response ended (a body cut short shows
// as too few bytes); not_found when the object is gone, io_error otherwise.
using RangeFetch = std::function<Result<void>(uint64_t offset, const RangeSink& sink)>;

class StreamingBlobReader final : public BlobReader
{
public:
  // `what` names the object in errors ("S3 GET bucket/key").
  StreamingBlobReader(uint64_t size, std::string what, RangeFetch fetch);
  ~StreamingBlobReader() override;
  StreamingBlobReader(const StreamingBlobReader&) = delete;
  StreamingBlobReader& operator=(const StreamingBlobReader&) = delete;

  uint64_t size() const override;
  // A read at another offset than the last one ended, or after the stream
  // failed, starts a new GET; three tries per read, not_found is final.
  Result<size_t> read_at(uint64_t offset, char* buffer, size_t size) override;

private:
  struct Stream;
  void start(uint64_t offset);
  void stop();
  Result<size_t> take(char* buffer, size_t size);

  uint64_t m_size;
  std::string m_what;
  RangeFetch m_fetch;
  uint64_t m_position = 0; // offset of the next byte the stream delivers
  std::unique_ptr<Stream> m_stream;
  std::string m_current; // the chunk being read, taken from the stream
  size_t m_current_used = 0;
};

} // namespace registry::storage
