# Runs `unet3d golden` on every layer case of ../shared/golden (the network
# case unet3d_* belongs to the network tests); skips when the fixtures are
# absent (exit 77).
if(NOT IS_DIRECTORY "${GOLDEN}")
  message("golden fixtures not found at ${GOLDEN}: skipped")
  cmake_language(EXIT 77)
endif()
file(GLOB cases LIST_DIRECTORIES true "${GOLDEN}/*")
set(dirs "")
foreach(c IN LISTS cases)
  if(IS_DIRECTORY "${c}" AND EXISTS "${c}/case.txt" AND NOT c MATCHES "/unet3d_")
    list(APPEND dirs "${c}")
  endif()
endforeach()
execute_process(COMMAND ${EXE} golden ${dirs} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "unet3d golden failed (${rc})")
endif()
