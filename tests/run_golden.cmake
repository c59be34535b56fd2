# Runs `unet3d golden` on every case of ../shared/golden (every layer and
# the whole tiny network) and of the repository's data/golden (LOCAL: the
# fixtures tools/make_golden_*.py generate for the ops added since); the
# shared ones are skipped when absent, the repository's always run.
if(NOT IS_DIRECTORY "${GOLDEN}")
  message("golden fixtures not found at ${GOLDEN}: only ${LOCAL}")
endif()
file(GLOB cases LIST_DIRECTORIES true "${GOLDEN}/*" "${LOCAL}/*")
set(dirs "")
foreach(c IN LISTS cases)
  if(IS_DIRECTORY "${c}" AND EXISTS "${c}/case.txt")
    list(APPEND dirs "${c}")
  endif()
endforeach()
execute_process(COMMAND ${EXE} golden ${dirs} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "unet3d golden failed (${rc})")
endif()
