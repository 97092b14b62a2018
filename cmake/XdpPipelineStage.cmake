# Functions that build stages: used by this repository and, once installed, by out-of-tree stages
# through find_package(XdpPipeline).
#
#   xdpp_bpf_object(NAME SOURCE [OUTPUT_DIR dir] [INCLUDES dir...])
#       clang -target bpf -O2 -g (BTF on) SOURCE -> OUTPUT_DIR/NAME.bpf.o, target NAME_bpf.
#   xdp_pipeline_add_stage(NAME BPF source.bpf.c PLUGIN source.cpp...)
#       The stage's BPF object and its plugin (a MODULE library NAME.so), side by side in the
#       directories where xdp-pipeline looks for them.

find_program(XDPP_CLANG NAMES clang clang-16 clang-14 REQUIRED)

if(NOT DEFINED XDPP_BPF_OUTPUT_DIR)
  set(XDPP_BPF_OUTPUT_DIR "${CMAKE_BINARY_DIR}/bpf")
endif()
if(NOT DEFINED XDPP_PLUGIN_OUTPUT_DIR)
  set(XDPP_PLUGIN_OUTPUT_DIR "${CMAKE_BINARY_DIR}/plugins")
endif()

function(xdpp_bpf_object NAME SOURCE)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR" "INCLUDES" ${ARGN})
  if(NOT ARG_OUTPUT_DIR)
    set(ARG_OUTPUT_DIR "${XDPP_BPF_OUTPUT_DIR}")
  endif()
  get_filename_component(source "${SOURCE}" ABSOLUTE)
  set(object "${ARG_OUTPUT_DIR}/${NAME}.bpf.o")
  set(include_flags)
  foreach(dir IN LISTS XDPP_BPF_INCLUDE_DIRS ARG_INCLUDES)
    list(APPEND include_flags "-I${dir}")
  endforeach()
  # The multiarch directory holds <asm/types.h>, which <linux/types.h> needs even under -target bpf.
  if(CMAKE_LIBRARY_ARCHITECTURE)
    list(APPEND include_flags "-idirafter" "/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}")
  endif()
  add_custom_command(
    OUTPUT "${object}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${ARG_OUTPUT_DIR}"
    COMMAND "${XDPP_CLANG}" -target bpf -O2 -g -Wall -Werror ${include_flags}
            -MD -MF "${object}.d" -c "${source}" -o "${object}"
    DEPENDS "${source}"
    DEPFILE "${object}.d"
    COMMENT "BPF ${NAME}.bpf.o"
    VERBATIM)
  add_custom_target(${NAME}_bpf ALL DEPENDS "${object}")
  set_property(TARGET ${NAME}_bpf PROPERTY XDPP_OBJECT "${object}")
endfunction()

function(xdp_pipeline_add_stage NAME)
  cmake_parse_arguments(ARG "" "BPF" "PLUGIN;INCLUDES" ${ARGN})
  if(NOT ARG_BPF OR NOT ARG_PLUGIN)
    message(FATAL_ERROR "xdp_pipeline_add_stage(${NAME}): BPF and PLUGIN are required")
  endif()
  get_filename_component(bpf_dir "${ARG_BPF}" DIRECTORY)
  get_filename_component(bpf_dir "${bpf_dir}" ABSOLUTE)
  xdpp_bpf_object(${NAME} "${ARG_BPF}" INCLUDES ${ARG_INCLUDES} "${bpf_dir}")
  add_library(${NAME} MODULE ${ARG_PLUGIN})
  target_link_libraries(${NAME} PRIVATE XdpPipeline::sdk)
  target_include_directories(${NAME} PRIVATE "${bpf_dir}" ${ARG_INCLUDES})
  set_target_properties(${NAME} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY "${XDPP_PLUGIN_OUTPUT_DIR}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  add_dependencies(${NAME} ${NAME}_bpf)
endfunction()
