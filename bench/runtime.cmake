add_executable(runtime_bench ${CMAKE_CURRENT_LIST_DIR}/runtime_bench.cc)
target_link_libraries(runtime_bench PRIVATE llmpack_runtime benchmark::benchmark)
