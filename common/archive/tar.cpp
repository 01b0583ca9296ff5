#include "common/archive/tar.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

namespace registry::archive {

namespace {

constexpr size_t k_block = 512;
constexpr uint64_t k_max_octal_size = 077777777777ULL; // 11 octal digits
constexpr uint64_t k_max_meta_entry = 1 << 20;         // pax / GNU long-name data

// Offsets of the ustar header fields.
constexpr size_t k_name = 0, k_mode = 100, k_uid = 108, k_gid = 116, k_size = 124,
                 k_mtime = 136, k_chksum = 148, k_typeflag = 156, k_magic = 257,
                 k_version = 263, k_prefix = 345;

void
put_octal(char* field, size_t width, uint64_t value)
{
  // width - 1 digits, then NUL.
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  field[width - 1] = '\0';
}

// Splits `name` into ustar prefix (<= 155) and name (<= 100) at a '/'.
bool
split_ustar_name(const std::string& name, std::string& prefix, std::string& rest)
{
  if (name.size() <= 100) {
    prefix.clear();
    rest = name;
    return true;
  }
  for (size_t slash = name.rfind('/'); slash != std::string::npos && slash > 0;
       slash = name.rfind('/', slash - 1)) {
    if (slash <= 155 && name.size() - slash - 1 <= 100 && name.size() - slash - 1 > 0) {
      prefix = name.substr(0, slash);
      rest = name.substr(slash + 1);
      return true;
    }
    if (slash == 0) {
      break;
    }
  }
  return false;
}

// One pax record "<len> key=value\n", where len counts the whole record.
std::string
pax_record(const std::string& key, const std::string& value)
{
  size_t base = key.size() + value.size() + 3; // ' ', '=', '\n'
  size_t len = base + 1;
  while (std::to_string(len).size() + base != len) {
    len = std::to_string(len).size() + base;
  }
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

Result<uint64_t>
parse_number(const char* field, size_t width)
{
  auto first = static_cast<unsigned char>(field[0]);
  if (first & 0x80) {
    // GNU base-256: big-endian, the top bit of the first byte is a marker.
    uint64_t value = first & 0x7f;
    for (size_t i = 1; i < width; ++i) {
      if (value >> 56) {
        return fail(ErrorCode::corrupt, "corrupt archive: number out of range in a tar header");
      }
      value = (value << 8) | static_cast<unsigned char>(field[i]);
    }
    return value;
  }
  uint64_t value = 0;
  size_t i = 0;
  while (i < width && (field[i] == ' ' || field[i] == '\0')) {
    ++i;
  }
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (value >> 60) {
      return fail(ErrorCode::corrupt, "corrupt archive: number out of range in a tar header");
    }
    value = value * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  for (; i < width; ++i) {
    if (field[i] != ' ' && field[i] != '\0') {
      return fail(ErrorCode::corrupt, "corrupt archive: invalid number in a tar header");
    }
  }
  return value;
}

std::string
field_string(const char* field, size_t width)
{
  return std::string(field, strnlen(field, width));
}

bool
checksum_ok(const char* block)
{
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < k_block; ++i) {
    bool in_field = i >= k_chksum && i < k_chksum + 8;
    unsigned char u = in_field ? ' ' : static_cast<unsigned char>(block[i]);
    signed char s = in_field ? ' ' : static_cast<signed char>(block[i]);
    unsigned_sum += u;
    signed_sum += s;
  }
  auto stored = parse_number(block + k_chksum, 8);
  return stored && (*stored == unsigned_sum || static_cast<int64_t>(*stored) == signed_sum);
}

bool
all_zero(const char* block)
{
  for (size_t i = 0; i < k_block; ++i) {
    if (block[i] != 0) {
      return false;
    }
  }
  return true;
}

Unexpected
truncated()
{
  return fail(ErrorCode::corrupt, "the archive is truncated");
}

} // namespace

Result<std::string>
normalize_entry_name(std::string_view name)
{
  std::string original(name);
  if (!name.empty() && name.front() == '/') {
    return fail(ErrorCode::invalid_argument, "unsafe path in archive: absolute name '" + original + "'");
  }
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    std::string_view part = name.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (part == "..") {
      return fail(ErrorCode::invalid_argument, "unsafe path in archive: '" + original + "' leaves the archive");
    }
    if (!part.empty() && part != ".") {
      if (!out.empty()) {
        out += '/';
      }
      out += part;
    }
    if (slash == std::string_view::npos) {
      break;
    }
    pos = slash + 1;
  }
  if (out.find('\0') != std::string::npos) {
    return fail(ErrorCode::invalid_argument, "unsafe path in archive: embedded NUL");
  }
  return out;
}

// --- writer ---

Result<void>
TarWriter::write_header(const std::string& name, uint64_t size, char typeflag, int mode)
{
  std::string prefix;
  std::string rest;
  bool fits = split_ustar_name(name, prefix, rest);
  if (!fits || size > k_max_octal_size) {
    std::string records;
    if (!fits) {
      records += pax_record("path", name);
    }
    if (size > k_max_octal_size) {
      records += pax_record("size", std::to_string(size));
    }
    // The ustar fields then hold a truncated, harmless fallback.
    std::string pax_name = "PaxHeaders/" + name.substr(name.rfind('/') + 1).substr(0, 80);
    REGISTRY_TRY(write_header(pax_name, records.size(), 'x', 0644));
    REGISTRY_TRY(m_out.write(records.data(), records.size()));
    REGISTRY_TRY(pad(records.size()));
    if (!fits) {
      rest = name.substr(name.rfind('/') + 1).substr(0, 100);
      prefix.clear();
    }
  }
  std::array<char, k_block> h{};
  std::memcpy(h.data() + k_name, rest.data(), rest.size());
  put_octal(h.data() + k_mode, 8, static_cast<uint64_t>(mode));
  put_octal(h.data() + k_uid, 8, 0);
  put_octal(h.data() + k_gid, 8, 0);
  put_octal(h.data() + k_size, 12, size > k_max_octal_size ? 0 : size);
  put_octal(h.data() + k_mtime, 12, static_cast<uint64_t>(m_mtime));
  h[k_typeflag] = typeflag;
  std::memcpy(h.data() + k_magic, "ustar", 6); // with its NUL
  std::memcpy(h.data() + k_version, "00", 2);
  std::memcpy(h.data() + k_prefix, prefix.data(), prefix.size());
  std::memset(h.data() + k_chksum, ' ', 8);
  uint64_t sum = 0;
  for (char c : h) {
    sum += static_cast<unsigned char>(c);
  }
  put_octal(h.data() + k_chksum, 7, sum); // six digits, NUL, then the space
  h[k_chksum + 7] = ' ';
  return m_out.write(h.data(), h.size());
}

Result<void>
TarWriter::pad(uint64_t size)
{
  static const std::array<char, k_block> zeros{};
  size_t n = static_cast<size_t>((k_block - size % k_block) % k_block);
  return n ? m_out.write(zeros.data(), n) : ok();
}

Result<void>
TarWriter::add_directory(const std::string& name)
{
  REGISTRY_ASSERT(!m_in_file);
  REGISTRY_TRY_ASSIGN(auto clean, normalize_entry_name(name));
  if (clean.empty()) {
    return fail(ErrorCode::invalid_argument, "empty directory name in archive");
  }
  return write_header(clean + "/", 0, '5', 0755);
}

Result<void>
TarWriter::begin_file(const std::string& name, uint64_t size)
{
  REGISTRY_ASSERT(!m_in_file);
  REGISTRY_TRY_ASSIGN(auto clean, normalize_entry_name(name));
  if (clean.empty()) {
    return fail(ErrorCode::invalid_argument, "empty file name in archive");
  }
  REGISTRY_TRY(write_header(clean, size, '0', 0644));
  m_in_file = true;
  m_expected = size;
  m_written = 0;
  return ok();
}

Result<void>
TarWriter::write(const char* data, size_t size)
{
  REGISTRY_ASSERT(m_in_file);
  if (m_written + size > m_expected) {
    return fail(ErrorCode::invalid_argument, "more bytes than announced for a tar entry");
  }
  m_written += size;
  return m_out.write(data, size);
}

Result<void>
TarWriter::end_file()
{
  REGISTRY_ASSERT(m_in_file);
  m_in_file = false;
  if (m_written != m_expected) {
    return fail(ErrorCode::invalid_argument,
                "tar entry announced " + std::to_string(m_expected) + " bytes but got "
                  + std::to_string(m_written));
  }
  return pad(m_written);
}

Result<void>
TarWriter::add_file(const std::string& name, std::string_view content)
{
  REGISTRY_TRY(begin_file(name, content.size()));
  REGISTRY_TRY(write(content.data(), content.size()));
  return end_file();
}

Result<void>
TarWriter::finish()
{
  REGISTRY_ASSERT(!m_in_file);
  static const std::array<char, 2 * k_block> zeros{};
  return m_out.write(zeros.data(), zeros.size());
}

// --- reader ---

Result<bool>
TarReader::read_block(char* block)
{
  REGISTRY_TRY_ASSIGN(size_t n, util::read_full(m_in, block, k_block));
  if (n == 0) {
    return false;
  }
  if (n < k_block) {
    return truncated();
  }
  return true;
}

Result<void>
TarReader::skip_rest()
{
  std::vector<char> buffer(64 * 1024);
  while (m_remaining > 0) {
    REGISTRY_TRY_ASSIGN(size_t n, read(buffer.data(), buffer.size()));
    (void)n;
  }
  while (m_padding > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(m_padding, buffer.size()));
    REGISTRY_TRY_ASSIGN(size_t n, util::read_full(m_in, buffer.data(), want));
    if (n < want) {
      return truncated();
    }
    m_padding -= n;
  }
  return ok();
}

Result<size_t>
TarReader::read(char* buffer, size_t size)
{
  if (m_remaining == 0 || size == 0) {
    return size_t{0};
  }
  size_t want = static_cast<size_t>(std::min<uint64_t>(m_remaining, size));
  REGISTRY_TRY_ASSIGN(size_t n, m_in.read(buffer, want));
  if (n == 0) {
    return truncated();
  }
  m_remaining -= n;
  return n;
}

Result<std::string>
TarReader::read_small_entry(uint64_t size)
{
  if (size > k_max_meta_entry) {
    return fail(ErrorCode::corrupt, "corrupt archive: oversized extended header");
  }
  std::string data(static_cast<size_t>(size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    REGISTRY_TRY_ASSIGN(size_t n, read(data.data() + done, data.size() - done));
    done += n;
  }
  REGISTRY_TRY(skip_rest());
  return data;
}

Result<std::optional<TarEntry>>
TarReader::next()
{
  REGISTRY_TRY(skip_rest());
  std::optional<std::string> long_name;
  std::optional<uint64_t> pax_size;
  std::array<char, k_block> block{};
  while (true) {
    REGISTRY_TRY_ASSIGN(bool got, read_block(block.data()));
    if (!got) {
      return truncated(); // no end-of-archive marker
    }
    if (all_zero(block.data())) {
      // End of archive. A second zero block should follow; tolerate its absence.
      return std::optional<TarEntry>();
    }
    if (!checksum_ok(block.data())) {
      return fail(ErrorCode::corrupt, "corrupt archive: bad tar header checksum");
    }
    REGISTRY_TRY_ASSIGN(uint64_t size, parse_number(block.data() + k_size, 12));
    char typeflag = block[k_typeflag];
    m_remaining = size;
    m_padding = (k_block - size % k_block) % k_block;
    if (typeflag == 'x' || typeflag == 'g' || typeflag == 'L' || typeflag == 'K') {
      REGISTRY_TRY_ASSIGN(std::string data, read_small_entry(size));
      if (typeflag == 'L') {
        long_name = std::string(data.c_str());
      } else if (typeflag == 'x') {
        // Records: "<len> key=value\n".
        size_t pos = 0;
        while (pos < data.size()) {
          size_t space = data.find(' ', pos);
          if (space == std::string::npos) {
            return fail(ErrorCode::corrupt, "corrupt archive: malformed pax header");
          }
          uint64_t len = 0;
          try {
            len = std::stoull(data.substr(pos, space - pos));
          } catch (const std::exception&) {
            return fail(ErrorCode::corrupt, "corrupt archive: malformed pax header");
          }
          if (len < 3 || pos + len > data.size() || data[pos + len - 1] != '\n') {
            return fail(ErrorCode::corrupt, "corrupt archive: malformed pax header");
          }
          std::string record = data.substr(space + 1, pos + len - space - 2);
          size_t eq = record.find('=');
          if (eq != std::string::npos) {
            std::string key = record.substr(0, eq);
            std::string value = record.substr(eq + 1);
            if (key == "path") {
              long_name = value;
            } else if (key == "size") {
              try {
                pax_size = std::stoull(value);
              } catch (const std::exception&) {
                return fail(ErrorCode::corrupt, "corrupt archive: malformed pax size");
              }
            }
          }
          pos += len;
        }
      }
      continue; // 'g' and 'K' carry nothing we use
    }
    TarEntry entry;
    std::string raw_name;
    if (long_name) {
      raw_name = *long_name;
    } else {
      std::string name = field_string(block.data() + k_name, 100);
      std::string prefix;
      if (std::memcmp(block.data() + k_magic, "ustar", 5) == 0) {
        prefix = field_string(block.data() + k_prefix, 155);
      }
      raw_name = prefix.empty() ? name : prefix + "/" + name;
    }
    REGISTRY_TRY_ASSIGN(entry.name, normalize_entry_name(raw_name));
    if (pax_size) {
      size = *pax_size;
      m_remaining = size;
      m_padding = (k_block - size % k_block) % k_block;
    }
    entry.size = size;
    entry.typeflag = typeflag;
    bool trailing_slash = !raw_name.empty() && raw_name.back() == '/';
    if (typeflag == '0' || typeflag == '\0' || typeflag == '7') {
      entry.type = trailing_slash ? TarEntryType::directory : TarEntryType::file;
    } else if (typeflag == '5') {
      entry.type = TarEntryType::directory;
    } else {
      entry.type = TarEntryType::other;
    }
    if (typeflag >= '1' && typeflag <= '6' && typeflag != '5') {
      // Links, devices, FIFOs: their size field does not count data blocks.
      m_remaining = 0;
      m_padding = 0;
      entry.size = 0;
    }
    return std::optional<TarEntry>(std::move(entry));
  }
}

} // namespace registry::archive
