# Functions that build stages: used by this repository and, once installed, by out-of-tree stages
# through find_package(XdpPipeline) (cmake/XdpPipelineConfig.cmake.in sets the variables below first).
#
#   xdpp_bpf_object(NAME SOURCE [OUTPUT_DIR dir] [TARGET target] [INCLUDES dir...] [DEFINES NAME=VALUE...])
#       clang -target bpf -O2 -g (BTF on) SOURCE -> OUTPUT_DIR/NAME.bpf.o, target NAME_bpf (or TARGET).
#   xdp_pipeline_add_stage(NAME BPF source.bpf.c PLUGIN source.cpp... [INCLUDES dir...] [INSTALL])
#       The stage's BPF object and its plugin (a MODULE library NAME.so, target NAME). Out of tree both
#       land side by side in XDPP_STAGE_OUTPUT_DIR (default: <build>/stages), the directory a pipeline
#       file names with `plugin_dir`. INSTALL adds install rules into XDPP_INSTALL_PLUGIN_DIR and
#       XDPP_INSTALL_BPF_DIR, where an xdp-pipeline installed in the same prefix finds them by itself.
#
# Variables (set them before find_package/include to change them):
#   XDPP_BPF_INCLUDE_DIRS       where <xdp_pipeline/stage.h> and <xdp_pipeline/contract.h> are
#   XDPP_STAGE_OUTPUT_DIR       default for both output directories below
#   XDPP_BPF_OUTPUT_DIR         where NAME.bpf.o is built
#   XDPP_PLUGIN_OUTPUT_DIR      where NAME.so is built
#   XDPP_INSTALL_PLUGIN_DIR     install destination of NAME.so   (default: LIBDIR/xdp-pipeline/plugins)
#   XDPP_INSTALL_BPF_DIR        install destination of NAME.bpf.o (default: LIBDIR/xdp-pipeline/bpf)

find_program(XDPP_CLANG NAMES clang clang-16 clang-14 REQUIRED)
include(GNUInstallDirs)

if(NOT XDPP_BPF_INCLUDE_DIRS)
  message(FATAL_ERROR "XdpPipelineStage.cmake: XDPP_BPF_INCLUDE_DIRS is not set "
                      "(use find_package(XdpPipeline), which sets it)")
endif()
if(NOT DEFINED XDPP_STAGE_OUTPUT_DIR)
  set(XDPP_STAGE_OUTPUT_DIR "${CMAKE_BINARY_DIR}/stages")
endif()
if(NOT DEFINED XDPP_BPF_OUTPUT_DIR)
  set(XDPP_BPF_OUTPUT_DIR "${XDPP_STAGE_OUTPUT_DIR}")
endif()
if(NOT DEFINED XDPP_PLUGIN_OUTPUT_DIR)
  set(XDPP_PLUGIN_OUTPUT_DIR "${XDPP_STAGE_OUTPUT_DIR}")
endif()
if(NOT DEFINED XDPP_INSTALL_PLUGIN_DIR)
  set(XDPP_INSTALL_PLUGIN_DIR "${CMAKE_INSTALL_LIBDIR}/xdp-pipeline/plugins")
endif()
if(NOT DEFINED XDPP_INSTALL_BPF_DIR)
  set(XDPP_INSTALL_BPF_DIR "${CMAKE_INSTALL_LIBDIR}/xdp-pipeline/bpf")
endif()

function(xdpp_bpf_object NAME SOURCE)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR;TARGET" "INCLUDES;DEFINES" ${ARGN})
  if(NOT ARG_TARGET)
    set(ARG_TARGET ${NAME}_bpf)
  endif()
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
  foreach(define IN LISTS ARG_DEFINES)
    list(APPEND include_flags "-D${define}")
  endforeach()
  add_custom_command(
    OUTPUT "${object}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${ARG_OUTPUT_DIR}"
    COMMAND "${XDPP_CLANG}" -target bpf -O2 -g -Wall -Werror ${include_flags}
            -MD -MF "${object}.d" -c "${source}" -o "${object}"
    DEPENDS "${source}"
    DEPFILE "${object}.d"
    COMMENT "BPF ${NAME}.bpf.o"
    VERBATIM)
  add_custom_target(${ARG_TARGET} ALL DEPENDS "${object}")
  set_property(TARGET ${ARG_TARGET} PROPERTY XDPP_OBJECT "${object}")
endfunction()

function(xdp_pipeline_add_stage NAME)
  cmake_parse_arguments(ARG "INSTALL" "BPF" "PLUGIN;INCLUDES" ${ARGN})
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
  if(ARG_INSTALL)
    # xdp-pipeline refuses plugins (and their directories) that group or others may write.
    install(TARGETS ${NAME} LIBRARY DESTINATION "${XDPP_INSTALL_PLUGIN_DIR}"
            PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
    install(FILES "${XDPP_BPF_OUTPUT_DIR}/${NAME}.bpf.o" DESTINATION "${XDPP_INSTALL_BPF_DIR}")
  endif()
endfunction()
