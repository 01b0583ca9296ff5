#pragma once

// Result<T>: a value or an Error, with std::expected's member names so it can be
// replaced by std::expected once the toolchain has it. Result<void> carries no value.

#include "common/assert.hpp"
#include "common/error.hpp"

#include <optional>
#include <utility>
#include <variant>

namespace registry {

// Wraps an Error for implicit conversion into any Result<T>.
struct Unexpected {
  Error error;
};

inline Unexpected
fail(ErrorCode code, std::string message, std::string detail = {})
{
  return Unexpected{Error{code, std::move(message), std::move(detail)}};
}

inline Unexpected
fail(Error error)
{
  return Unexpected{std::move(error)};
}

template<typename T> class [[nodiscard]] Result
{
public:
  Result(T value) : m_state(std::in_place_index<0>, std::move(value)) {}
  Result(Unexpected unexpected)
    : m_state(std::in_place_index<1>, std::move(unexpected.error))
  {
  }
  template<typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T>
             && !std::is_same_v<std::decay_t<U>, Unexpected>
             && !std::is_same_v<std::decay_t<U>, Result>)
  Result(U&& value) : m_state(std::in_place_index<0>, T(std::forward<U>(value)))
  {
  }

  bool
  has_value() const
  {
    return m_state.index() == 0;
  }
  explicit operator bool() const
  {
    return has_value();
  }

  T&
  value() &
  {
    REGISTRY_ASSERT(has_value());
    return std::get<0>(m_state);
  }
  const T&
  value() const&
  {
    REGISTRY_ASSERT(has_value());
    return std::get<0>(m_state);
  }
  T&&
  value() &&
  {
    REGISTRY_ASSERT(has_value());
    return std::get<0>(std::move(m_state));
  }
  const Error&
  error() const
  {
    REGISTRY_ASSERT(!has_value());
    return std::get<1>(m_state);
  }
  Error&&
  take_error()
  {
    REGISTRY_ASSERT(!has_value());
    return std::get<1>(std::move(m_state));
  }

  T&
  operator*() &
  {
    return value();
  }
  const T&
  operator*() const&
  {
    return value();
  }
  T*
  operator->()
  {
    return &value();
  }
  const T*
  operator->() const
  {
    return &value();
  }

private:
  std::variant<T, Error> m_state;
};

template<> class [[nodiscard]] Result<void>
{
public:
  Result() = default;
  Result(Unexpected unexpected) : m_error(std::move(unexpected.error)) {}

  bool
  has_value() const
  {
    return !m_error.has_value();
  }
  explicit operator bool() const
  {
    return has_value();
  }
  void
  value() const
  {
    REGISTRY_ASSERT(has_value());
  }
  const Error&
  error() const
  {
    REGISTRY_ASSERT(!has_value());
    return *m_error;
  }
  Error&&
  take_error()
  {
    REGISTRY_ASSERT(!has_value());
    return std::move(*m_error);
  }

private:
  std::optional<Error> m_error;
};

inline Result<void>
ok()
{
  return {};
}

} // namespace registry

// Evaluates `expr` (a Result); returns its error from the enclosing function.
#define REGISTRY_TRY(expr)                                                     \
  do {                                                                         \
    auto registry_try_result_ = (expr);                                        \
    if (!registry_try_result_.has_value()) {                                   \
      return ::registry::Unexpected{registry_try_result_.take_error()};        \
    }                                                                          \
  } while (false)

#define REGISTRY_CONCAT_INNER_(a, b) a##b
#define REGISTRY_CONCAT_(a, b) REGISTRY_CONCAT_INNER_(a, b)

// Declares `var` from the value of `expr` (a Result) or returns its error.
#define REGISTRY_TRY_ASSIGN(var, expr)                                         \
  auto REGISTRY_CONCAT_(registry_try_, __LINE__) = (expr);                     \
  if (!REGISTRY_CONCAT_(registry_try_, __LINE__).has_value()) {                \
    return ::registry::Unexpected{                                             \
      REGISTRY_CONCAT_(registry_try_, __LINE__).take_error()};                 \
  }                                                                            \
  var = std::move(REGISTRY_CONCAT_(registry_try_, __LINE__)).value()
