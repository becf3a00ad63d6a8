dnl modules/ai/module.m4 - the ai module's configure checks, included by
dnl configure.ac when the folder is present. Its JSON Schema validation
dnl (schema.cc) is C++ over valijson and nlohmann's JSON, both header-only
dnl (Debian: libvalijson-dev, nlohmann-json3-dev); they are checked only
dnl when the module is built.
AC_PROG_CXX
AS_IF([test "x$enable_module_ai" = xyes], [
  AC_LANG_PUSH([C++])
  AC_CHECK_HEADER([nlohmann/json.hpp], [],
    [AC_MSG_ERROR([nlohmann/json.hpp not found: install nlohmann-json3-dev, or configure --disable-module-ai])])
  AC_CHECK_HEADER([valijson/validator.hpp], [],
    [AC_MSG_ERROR([valijson/validator.hpp not found: install libvalijson-dev, or configure --disable-module-ai])],
    [#include <nlohmann/json.hpp>])
  AC_LANG_POP([C++])
])
