# Multi-process training and prediction over MPI (issue 18). Include after
# add_library(unet3d ...):  include(cmake/mpi.cmake)
# UNET3D_MPI: AUTO builds src/dist/dist_mpi.c when find_package(MPI) finds
# a C MPI (Open MPI, MPICH, vendor MPIs: only the MPI standard API is used);
# ON requires it; OFF builds src/dist/dist_none.c (one process, no MPI).
# Sets UNET3D_MPI_ENABLED and, when enabled, MPIEXEC_EXECUTABLE for tests.
set(UNET3D_MPI AUTO CACHE STRING
    "Build with MPI: AUTO (when an MPI C library is found), ON, OFF")
set_property(CACHE UNET3D_MPI PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${UNET3D_MPI}" _u3d_mpi_mode)
if(_u3d_mpi_mode MATCHES "^(ON|YES|TRUE|Y|1)$")
  set(_u3d_mpi_mode ON)
elseif(_u3d_mpi_mode MATCHES "^(OFF|NO|FALSE|N|0|)$")
  set(_u3d_mpi_mode OFF)
elseif(NOT _u3d_mpi_mode STREQUAL "AUTO")
  message(FATAL_ERROR "UNET3D_MPI must be AUTO, ON or OFF, not '${UNET3D_MPI}'")
endif()

set(UNET3D_MPI_ENABLED OFF)
if(NOT _u3d_mpi_mode STREQUAL "OFF")
  find_package(MPI COMPONENTS C QUIET)
  if(MPI_C_FOUND)
    set(UNET3D_MPI_ENABLED ON)
  elseif(_u3d_mpi_mode STREQUAL "ON")
    message(FATAL_ERROR "UNET3D_MPI=ON but no MPI C library was found "
                        "(Debian: apt-get install libopenmpi-dev openmpi-bin)")
  endif()
endif()
if(UNET3D_MPI_ENABLED)
  target_sources(unet3d PRIVATE ${CMAKE_SOURCE_DIR}/src/dist/dist_mpi.c)
  target_link_libraries(unet3d PUBLIC MPI::MPI_C)
  target_compile_definitions(unet3d PUBLIC UNET3D_HAVE_MPI=1)
  message(STATUS "unet3d: MPI enabled (MPI ${MPI_C_VERSION})")
else()
  target_sources(unet3d PRIVATE ${CMAKE_SOURCE_DIR}/src/dist/dist_none.c)
  message(STATUS "unet3d: MPI disabled")
endif()
