# Project-wide warning and sanitizer flags, applied per target through mixserve_options().
add_library(mixserve_options INTERFACE)
target_compile_options(mixserve_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter
  -Wno-restrict)  # GCC 12 false positives in std::string (GCC bug 105329)
if(MIXSERVE_WERROR)
  target_compile_options(mixserve_options INTERFACE -Werror)
endif()
if(MIXSERVE_SANITIZE)
  target_compile_options(mixserve_options INTERFACE -fsanitize=${MIXSERVE_SANITIZE} -fno-omit-frame-pointer)
  target_link_options(mixserve_options INTERFACE -fsanitize=${MIXSERVE_SANITIZE})
endif()
