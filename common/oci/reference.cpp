#include "common/oci/reference.hpp"

namespace registry::oci {

namespace {

bool
is_lower_alnum(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool
is_separator_run(std::string_view sep)
{
  if (sep == "." || sep == "_" || sep == "__") {
    return true;
  }
  for (char c : sep) {
    if (c != '-') {
      return false;
    }
  }
  return !sep.empty();
}

} // namespace

bool
is_valid_name_component(std::string_view component)
{
  if (component.empty() || !is_lower_alnum(component.front())
      || !is_lower_alnum(component.back())) {
    return false;
  }
  size_t i = 0;
  while (i < component.size()) {
    if (is_lower_alnum(component[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < component.size() && !is_lower_alnum(component[i])) {
      ++i;
    }
    if (!is_separator_run(component.substr(start, i - start))) {
      return false;
    }
  }
  return true;
}

bool
is_valid_repository_name(std::string_view name)
{
  if (name.empty() || name.size() > k_max_name_length) {
    return false;
  }
  size_t start = 0;
  for (;;) {
    size_t slash = name.find('/', start);
    std::string_view component = name.substr(start, slash == std::string_view::npos
                                                      ? std::string_view::npos
                                                      : slash - start);
    if (!is_valid_name_component(component)) {
      return false;
    }
    if (slash == std::string_view::npos) {
      return true;
    }
    start = slash + 1;
  }
}

bool
is_valid_tag(std::string_view tag)
{
  if (tag.empty() || tag.size() > 128) {
    return false;
  }
  for (size_t i = 0; i < tag.size(); ++i) {
    char c = tag[i];
    bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-'))) {
      return false;
    }
  }
  return true;
}

bool
is_valid_feed_name(std::string_view name)
{
  if (name.empty() || name.size() > 64 || name == "v2" || name == "auth" || name == "ui"
      || name == "api" || name.front() == '_') {
    return false;
  }
  if (!is_lower_alnum(name.front()) || !is_lower_alnum(name.back())) {
    return false;
  }
  for (size_t i = 1; i < name.size(); ++i) {
    char c = name[i];
    if (is_lower_alnum(c)) {
      continue;
    }
    if ((c != '.' && c != '_' && c != '-') || !is_lower_alnum(name[i - 1])) {
      return false;
    }
  }
  return true;
}

Result<RepositoryName>
parse_repository_name(std::string_view name)
{
  if (!is_valid_repository_name(name)) {
    return fail(ErrorCode::name_invalid, "invalid repository name",
                std::string(name.substr(0, 300)));
  }
  size_t slash = name.find('/');
  if (slash == std::string_view::npos) {
    return fail(ErrorCode::name_invalid,
                "repository name must start with a feed: FEED/REPOSITORY", std::string(name));
  }
  return RepositoryName{std::string(name.substr(0, slash)), std::string(name.substr(slash + 1))};
}

Result<ManifestReference>
parse_manifest_reference(std::string_view text)
{
  if (text.find(':') != std::string_view::npos) {
    REGISTRY_TRY_ASSIGN(auto digest, Digest::parse(text));
    return ManifestReference{digest};
  }
  if (!is_valid_tag(text)) {
    return fail(ErrorCode::invalid_argument, "invalid tag", std::string(text.substr(0, 200)));
  }
  return ManifestReference{std::string(text)};
}

Result<ImageReference>
parse_image_reference(std::string_view text)
{
  std::string_view name = text;
  std::string_view ref;
  if (size_t at = text.find('@'); at != std::string_view::npos) {
    name = text.substr(0, at);
    ref = text.substr(at + 1);
    REGISTRY_TRY_ASSIGN(auto digest, Digest::parse(ref));
    REGISTRY_TRY_ASSIGN(auto repo, parse_repository_name(name));
    return ImageReference{std::move(repo), ManifestReference{digest}};
  }
  size_t colon = text.rfind(':');
  size_t last_slash = text.rfind('/');
  if (colon != std::string_view::npos
      && (last_slash == std::string_view::npos || colon > last_slash)) {
    name = text.substr(0, colon);
    ref = text.substr(colon + 1);
  } else {
    ref = "latest";
  }
  REGISTRY_TRY_ASSIGN(auto repo, parse_repository_name(name));
  if (!is_valid_tag(ref)) {
    return fail(ErrorCode::invalid_argument, "invalid tag", std::string(ref));
  }
  return ImageReference{std::move(repo), ManifestReference{std::string(ref)}};
}

} // namespace registry::oci
