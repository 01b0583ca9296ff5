#pragma once

// A small streaming tar (POSIX ustar + pax extended headers) writer and reader,
// enough for OCI image layouts: regular files and directories.
//
// Writer: names that do not fit the ustar name/prefix fields, and files of
// 8 GiB or more, get a pax extended header ("path", "size"). Every entry has
// uid/gid 0, no user names, and the caller's mtime (deterministic output).
//
// Reader: accepts ustar, pax ('x' local and 'g' global headers; "path" and
// "size" are honoured) and GNU long names ('L'). Entry names are normalised
// ("./a/b" -> "a/b", trailing '/' dropped) and rejected (invalid_argument)
// when absolute or when a component is "..". A stream that ends before the
// end-of-archive marker, or inside an entry, is corrupt ("truncated").
//
// Thread-safety: one writer or reader belongs to one thread.

#include "common/result.hpp"
#include "common/util/stream.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace registry::archive {

enum class TarEntryType { file, directory, other };

struct TarEntry {
  std::string name; // normalised, relative
  TarEntryType type = TarEntryType::file;
  uint64_t size = 0;
  char typeflag = '0';
};

class TarWriter
{
public:
  // Writes into `out` (not owned; must outlive the writer).
  explicit TarWriter(util::OutputStream& out, int64_t mtime = 0) : m_out(out), m_mtime(mtime) {}

  // Adds a directory entry `name` (mode 0755).
  Result<void> add_directory(const std::string& name);
  // Starts a regular file (mode 0644) of exactly `size` bytes, to be written
  // with write() and closed with end_file(). invalid_argument for an empty,
  // absolute or ".."-containing name.
  Result<void> begin_file(const std::string& name, uint64_t size);
  Result<void> write(const char* data, size_t size);
  // invalid_argument when fewer or more bytes than announced were written.
  Result<void> end_file();
  // A whole small file.
  Result<void> add_file(const std::string& name, std::string_view content);
  // Writes the end-of-archive marker (two zero blocks). Does not finish `out`.
  Result<void> finish();

private:
  Result<void> write_header(const std::string& name, uint64_t size, char typeflag, int mode);
  Result<void> pad(uint64_t size);

  util::OutputStream& m_out;
  int64_t m_mtime;
  bool m_in_file = false;
  uint64_t m_expected = 0;
  uint64_t m_written = 0;
};

class TarReader
{
public:
  // Reads from `in` (not owned; must outlive the reader).
  explicit TarReader(util::InputStream& in) : m_in(in) {}

  // The next entry, skipping the unread data of the current one; nullopt at the
  // end-of-archive marker. corrupt for a bad header or checksum and for a
  // truncated stream, invalid_argument for an unsafe name.
  Result<std::optional<TarEntry>> next();
  // Reads the current entry's data; 0 at its end. corrupt when truncated.
  Result<size_t> read(char* buffer, size_t size);

private:
  Result<bool> read_block(char* block); // false at a clean end of the stream
  Result<void> skip_rest();
  Result<std::string> read_small_entry(uint64_t size);

  util::InputStream& m_in;
  uint64_t m_remaining = 0; // data bytes left in the current entry
  uint64_t m_padding = 0;   // zero bytes after them
};

// Normalises a tar entry name (see above). invalid_argument when unsafe or empty.
Result<std::string> normalize_entry_name(std::string_view name);

} // namespace registry::archive
