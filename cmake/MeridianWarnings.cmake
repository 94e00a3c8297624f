# meridian_target_defaults(<target>): the warning and optimisation flags every Meridian target uses.
function(meridian_target_defaults target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
      -Wunused -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough>)
  if(MERIDIAN_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
  if(MERIDIAN_NATIVE_ARCH)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  target_include_directories(${target} PUBLIC ${MERIDIAN_SOURCE_ROOT})
endfunction()
