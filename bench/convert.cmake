add_executable(convert_bench ${CMAKE_CURRENT_LIST_DIR}/convert_bench.cc)
target_link_libraries(convert_bench PRIVATE llmpack_commands benchmark::benchmark)
