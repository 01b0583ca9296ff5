#include "common/archive/tar.hpp"

#include "common/util/zstd.hpp"
#include "tests/support/test_dir.hpp"
#include "tests/unit/unit_helpers.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

using registry::ErrorCode;
using registry::test::code_of;
namespace archive = registry::archive;
namespace util = registry::util;

namespace {

class StringOutput : public util::OutputStream
{
public:
  registry::Result<void>
  write(const char* data, size_t size) override
  {
    bytes.append(data, size);
    return registry::ok();
  }
  registry::Result<void>
  finish() override
  {
    finished = true;
    return registry::ok();
  }
  std::string bytes;
  bool finished = false;
};

// Serves a string in reads of at most `step` bytes (exercises short reads).
class StringInput : public util::InputStream
{
public:
  explicit StringInput(std::string bytes, size_t step = 7919) : m_bytes(std::move(bytes)), m_step(step) {}
  registry::Result<size_t>
  read(char* buffer, size_t size) override
  {
    size_t n = std::min({size, m_step, m_bytes.size() - m_offset});
    std::memcpy(buffer, m_bytes.data() + m_offset, n);
    m_offset += n;
    return n;
  }

private:
  std::string m_bytes;
  size_t m_step;
  size_t m_offset = 0;
};

struct ReadEntry {
  std::string name;
  archive::TarEntryType type;
  std::string data;
};

registry::Result<std::vector<ReadEntry>>
read_all(util::InputStream& in)
{
  archive::TarReader reader(in);
  std::vector<ReadEntry> out;
  while (true) {
    REGISTRY_TRY_ASSIGN(auto entry, reader.next());
    if (!entry) {
      return out;
    }
    ReadEntry e{entry->name, entry->type, {}};
    char buffer[4096];
    while (true) {
      REGISTRY_TRY_ASSIGN(size_t n, reader.read(buffer, sizeof buffer));
      if (n == 0) {
        break;
      }
      e.data.append(buffer, n);
    }
    out.push_back(std::move(e));
  }
}

// One hand-made ustar header block for `name` with a correct checksum.
std::string
raw_header(const std::string& name, size_t size, char type = '0')
{
  char h[512] = {};
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(h + 100, 8, "%07o", 0644);
  std::snprintf(h + 124, 12, "%011o", static_cast<unsigned>(size));
  h[156] = type;
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) {
    sum += c;
  }
  std::snprintf(h + 148, 8, "%06o", sum);
  return std::string(h, 512);
}

std::string
raw_file(const std::string& name, const std::string& data)
{
  std::string out = raw_header(name, data.size()) + data;
  out.append((512 - data.size() % 512) % 512, '\0');
  return out;
}

} // namespace

TEST_SUITE("archive")
{
  TEST_CASE("archive::TarWriter and TarReader round trip")
  {
    StringOutput out;
    archive::TarWriter writer(out);
    std::string big = registry::test::random_bytes(3 * 1024 * 1024 + 17, 5);
    std::string long_dir(150, 'd');
    std::string very_long = std::string(120, 'x') + "/" + std::string(200, 'y');
    REQUIRE(writer.add_file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
    REQUIRE(writer.add_directory("blobs"));
    REQUIRE(writer.add_file("blobs/sha256/empty", ""));
    REQUIRE(writer.begin_file("blobs/sha256/big", big.size()));
    for (size_t i = 0; i < big.size(); i += 100000) {
      REQUIRE(writer.write(big.data() + i, std::min<size_t>(100000, big.size() - i)));
    }
    REQUIRE(writer.end_file());
    REQUIRE(writer.add_file(long_dir + "/ustar-prefix-name", "prefix"));
    REQUIRE(writer.add_file(very_long, "pax"));
    REQUIRE(writer.finish());
    CHECK(out.bytes.size() % 512 == 0);

    SUBCASE("read back in small pieces")
    {
      StringInput in(out.bytes);
      auto entries = read_all(in);
      REQUIRE_MESSAGE(entries, registry::test::describe(entries));
      REQUIRE(entries->size() == 6);
      CHECK((*entries)[0].name == "oci-layout");
      CHECK((*entries)[0].data == R"({"imageLayoutVersion":"1.0.0"})");
      CHECK((*entries)[1].name == "blobs");
      CHECK((*entries)[1].type == archive::TarEntryType::directory);
      CHECK((*entries)[2].data.empty());
      CHECK((*entries)[3].data == big);
      CHECK((*entries)[4].name == long_dir + "/ustar-prefix-name");
      CHECK((*entries)[5].name == very_long);
      CHECK((*entries)[5].data == "pax");
    }
    SUBCASE("through zstd with several workers")
    {
      StringOutput compressed;
      auto z = util::ZstdOutputStream::create(compressed, 3, 2);
      REQUIRE(z);
      REQUIRE((*z)->write(out.bytes.data(), out.bytes.size()));
      REQUIRE((*z)->finish());
      CHECK(compressed.finished);
      CHECK(util::is_zstd_magic(compressed.bytes));
      StringInput raw(compressed.bytes);
      auto unz = util::ZstdInputStream::create(raw);
      REQUIRE(unz);
      auto entries = read_all(**unz);
      REQUIRE_MESSAGE(entries, registry::test::describe(entries));
      CHECK((*entries)[3].data == big);

      SUBCASE("a truncated zstd stream is corrupt")
      {
        StringInput cut(compressed.bytes.substr(0, compressed.bytes.size() - 5));
        auto unz2 = util::ZstdInputStream::create(cut);
        REQUIRE(unz2);
        auto broken = read_all(**unz2);
        CHECK(code_of(broken) == ErrorCode::corrupt);
      }
      SUBCASE("damaged zstd data is corrupt")
      {
        std::string damaged = compressed.bytes;
        for (size_t i = 100; i < 200; ++i) {
          damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
        }
        StringInput in(damaged);
        auto unz2 = util::ZstdInputStream::create(in);
        REQUIRE(unz2);
        CHECK(code_of(read_all(**unz2)) == ErrorCode::corrupt);
      }
    }
    SUBCASE("a truncated tar is corrupt")
    {
      for (size_t cut : {size_t{100}, size_t{512 + 10}, out.bytes.size() / 2, out.bytes.size() - 1024}) {
        StringInput in(out.bytes.substr(0, cut));
        CHECK_MESSAGE(code_of(read_all(in)) == ErrorCode::corrupt, "cut at ", cut);
      }
    }
    SUBCASE("a damaged header fails its checksum")
    {
      std::string damaged = out.bytes;
      damaged[3] = 'X';
      StringInput in(damaged);
      CHECK(code_of(read_all(in)) == ErrorCode::corrupt);
    }
  }

  TEST_CASE("archive::TarReader rejects names that leave the archive")
  {
    for (std::string name : {"../evil", "/etc/passwd", "blobs/../../x", "a/./../../b", ".."}) {
      std::string tar = raw_file(name, "x") + std::string(1024, '\0');
      StringInput in(tar);
      auto entries = read_all(in);
      CHECK_MESSAGE(code_of(entries) == ErrorCode::invalid_argument, name);
    }
    SUBCASE("also in a pax path record")
    {
      std::string record = "22 path=../../escaped\n";
      std::string tar = raw_header("PaxHeaders/x", record.size(), 'x') + record
                        + std::string(512 - record.size(), '\0') + raw_file("harmless", "x")
                        + std::string(1024, '\0');
      StringInput in(tar);
      CHECK(code_of(read_all(in)) == ErrorCode::invalid_argument);
    }
    SUBCASE("harmless forms are normalised")
    {
      std::string tar = raw_file("./blobs/sha256/abc", "x") + raw_file("a//b/./c", "y")
                        + std::string(1024, '\0');
      StringInput in(tar);
      auto entries = read_all(in);
      REQUIRE(entries);
      CHECK((*entries)[0].name == "blobs/sha256/abc");
      CHECK((*entries)[1].name == "a/b/c");
    }
    SUBCASE("the writer refuses them too")
    {
      StringOutput out;
      archive::TarWriter writer(out);
      CHECK(code_of(writer.add_file("../x", "")) == ErrorCode::invalid_argument);
      CHECK(code_of(writer.add_file("/abs", "")) == ErrorCode::invalid_argument);
    }
  }
}
