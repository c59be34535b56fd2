# The cuDNN backend (issue 6). Include after add_library(unet3d ...):
#   include(cmake/cudnn.cmake)
# UNET3D_CUDNN: AUTO builds the backend when the CUDA toolkit (>= 12.0, for
# cudaLibraryLoadData) and cuDNN 9 are found; ON requires them; OFF never.
# Sets UNET3D_CUDNN_ENABLED. Hints: CUDAToolkit_ROOT, CUDNN_ROOT.
# The backend is plain C (CUDA runtime + cuDNN + NVRTC): its kernels are
# compiled at run time by NVRTC, so no CUDA language / nvcc step is needed.
set(UNET3D_CUDNN AUTO CACHE STRING
    "Build the cuDNN backend: AUTO (when CUDA and cuDNN are found), ON, OFF")
set_property(CACHE UNET3D_CUDNN PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${UNET3D_CUDNN}" _u3d_cudnn_mode)
if(_u3d_cudnn_mode MATCHES "^(ON|YES|TRUE|Y|1)$")
  set(_u3d_cudnn_mode ON)
elseif(_u3d_cudnn_mode MATCHES "^(OFF|NO|FALSE|N|0|)$")
  set(_u3d_cudnn_mode OFF)
elseif(NOT _u3d_cudnn_mode STREQUAL "AUTO")
  message(FATAL_ERROR "UNET3D_CUDNN must be AUTO, ON or OFF, not '${UNET3D_CUDNN}'")
endif()

set(UNET3D_CUDNN_ENABLED OFF)
set(_u3d_cudnn_why "")
if(NOT _u3d_cudnn_mode STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(NOT CUDAToolkit_FOUND)
    set(_u3d_cudnn_why "the CUDA toolkit was not found (set CUDAToolkit_ROOT)")
  elseif(CUDAToolkit_VERSION VERSION_LESS 12.0)
    set(_u3d_cudnn_why "CUDA ${CUDAToolkit_VERSION} is older than 12.0")
  elseif(NOT TARGET CUDA::cudart OR NOT TARGET CUDA::nvrtc)
    set(_u3d_cudnn_why "the CUDA runtime or NVRTC library was not found")
  else()
    find_path(CUDNN_INCLUDE_DIR cudnn_version.h
              HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_INCLUDE_DIRS}
              PATH_SUFFIXES include)
    find_library(CUDNN_LIBRARY cudnn
                 HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_DIR}
                 PATH_SUFFIXES lib lib64 lib/x64)
    if(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
      set(_u3d_cudnn_why "cuDNN was not found (set CUDNN_ROOT)")
    else()
      file(STRINGS "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _u3d_cudnn_major
           REGEX "^#define CUDNN_MAJOR +[0-9]+")
      string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _u3d_cudnn_major "${_u3d_cudnn_major}")
      if(NOT _u3d_cudnn_major EQUAL 9)
        set(_u3d_cudnn_why "cuDNN ${_u3d_cudnn_major} found, cuDNN 9 needed")
      else()
        set(UNET3D_CUDNN_ENABLED ON)
      endif()
    endif()
  endif()
  if(NOT UNET3D_CUDNN_ENABLED AND _u3d_cudnn_mode STREQUAL "ON")
    message(FATAL_ERROR "UNET3D_CUDNN=ON but ${_u3d_cudnn_why}")
  endif()
endif()

file(GLOB U3D_CUDNN_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/src/backends/cudnn/*.c)
if(UNET3D_CUDNN_ENABLED)
  # Sources NVRTC compiles at run time, embedded as NUL-terminated arrays:
  # kernels.cu, the augmentation's shared arithmetic it includes
  # (cl/augment.cl) and the Philox that includes (cl/philox.h).
  set(_u3d_cudnn_embeds
      src/backends/cudnn/kernels.cu u3d_cudnn_kernels_src
      cl/augment.cl u3d_cudnn_augment_src
      cl/philox.h u3d_cudnn_philox_src)
  set(_u3d_cudnn_embedded "")
  while(_u3d_cudnn_embeds)
    list(POP_FRONT _u3d_cudnn_embeds _in _name)
    set(_out ${CMAKE_BINARY_DIR}/${_name}.c)
    add_custom_command(
      OUTPUT ${_out}
      COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_SOURCE_DIR}/${_in} -DOUT=${_out}
              -DNAME=${_name} -P ${CMAKE_SOURCE_DIR}/cmake/cudnn_embed.cmake
      DEPENDS ${CMAKE_SOURCE_DIR}/${_in}
              ${CMAKE_SOURCE_DIR}/cmake/cudnn_embed.cmake
      COMMENT "Embedding ${_in} for the cuDNN backend (NVRTC)")
    list(APPEND _u3d_cudnn_embedded ${_out})
  endwhile()
  target_sources(unet3d PRIVATE ${U3D_CUDNN_SOURCES} ${_u3d_cudnn_embedded})
  # PUBLIC: tests/test_cudnn.c uses the backend's internal header too
  target_compile_definitions(unet3d PUBLIC U3D_HAVE_CUDNN=1)
  target_include_directories(unet3d SYSTEM PUBLIC ${CUDNN_INCLUDE_DIR})
  # The CUDA runtime, NVRTC and cuDNN are not linked: loader.c opens them
  # with dlopen on first use, so OpenCL runs never map them (34 MiB of
  # resident memory) and binaries start on machines without them. It
  # tries the soname, then the folder the build found each library in.
  get_target_property(_u3d_cudart CUDA::cudart IMPORTED_LOCATION)
  get_target_property(_u3d_nvrtc CUDA::nvrtc IMPORTED_LOCATION)
  get_filename_component(_u3d_cudart_dir "${_u3d_cudart}" DIRECTORY)
  get_filename_component(_u3d_nvrtc_dir "${_u3d_nvrtc}" DIRECTORY)
  get_filename_component(_u3d_cudnn_dir "${CUDNN_LIBRARY}" DIRECTORY)
  set(_u3d_cuda_major ${CUDAToolkit_VERSION_MAJOR})
  set_source_files_properties(
    ${CMAKE_SOURCE_DIR}/src/backends/cudnn/loader.c PROPERTIES
    COMPILE_DEFINITIONS
    "U3D_CUDART_SONAME=\"libcudart.so.${_u3d_cuda_major}\";U3D_CUDART_DIR=\"${_u3d_cudart_dir}\";U3D_NVRTC_SONAME=\"libnvrtc.so.${_u3d_cuda_major}\";U3D_NVRTC_DIR=\"${_u3d_nvrtc_dir}\";U3D_CUDNN_SONAME=\"libcudnn.so.${_u3d_cudnn_major}\";U3D_CUDNN_DIR=\"${_u3d_cudnn_dir}\"")
  target_include_directories(unet3d SYSTEM PUBLIC ${CUDAToolkit_INCLUDE_DIRS})
  find_package(Threads REQUIRED)
  target_link_libraries(unet3d PUBLIC ${CMAKE_DL_LIBS} Threads::Threads)
  message(STATUS "cuDNN backend: enabled (CUDA ${CUDAToolkit_VERSION}, "
                 "cuDNN ${_u3d_cudnn_major}: ${CUDNN_LIBRARY})")
else()
  # Sources globbed into unet3d anyway compile to nothing without
  # U3D_HAVE_CUDNN; keep them out of the build entirely.
  if(U3D_CUDNN_SOURCES)
    set_source_files_properties(${U3D_CUDNN_SOURCES} PROPERTIES
                                HEADER_FILE_ONLY ON)
  endif()
  if(_u3d_cudnn_mode STREQUAL "OFF")
    message(STATUS "cuDNN backend: disabled (UNET3D_CUDNN=OFF)")
  else()
    message(STATUS "cuDNN backend: not built: ${_u3d_cudnn_why}")
  endif()
endif()
