# registry_settings / registry_warnings: INTERFACE targets linked PRIVATE by every
# first-party target (never by imported third-party targets).
if(DEFINED ENV{CI} OR EXISTS "${PROJECT_SOURCE_DIR}/.git")
  set(_werror_default ON)
else()
  set(_werror_default OFF)
endif()
option(REGISTRYCTL_WERROR "Treat warnings as errors" ${_werror_default})
set(REGISTRYCTL_SANITIZE "" CACHE STRING "Sanitizers, e.g. address;undefined or thread")

add_library(registry_settings INTERFACE)
target_compile_features(registry_settings INTERFACE cxx_std_20)
target_compile_definitions(registry_settings INTERFACE $<$<CONFIG:Debug>:_GLIBCXX_ASSERTIONS>)
if("address" IN_LIST REGISTRYCTL_SANITIZE AND "thread" IN_LIST REGISTRYCTL_SANITIZE)
  message(FATAL_ERROR "address and thread sanitizers cannot be combined")
endif()
foreach(san IN LISTS REGISTRYCTL_SANITIZE)
  target_compile_options(registry_settings INTERFACE -fsanitize=${san} -fno-omit-frame-pointer)
  target_link_options(registry_settings INTERFACE -fsanitize=${san})
endforeach()

add_library(registry_warnings INTERFACE)
target_compile_options(registry_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual
  -Wcast-align -Wdouble-promotion -Wextra-semi -Wunused
  $<$<CXX_COMPILER_ID:GNU>:-Wlogical-op>
  $<$<BOOL:${REGISTRYCTL_WERROR}>:-Werror>)
