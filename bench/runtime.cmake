add_executable(runtime_bench ${CMAKE_CURRENT_LIST_DIR}/runtime_bench.cc)
target_link_libraries(runtime_bench PRIVATE llmpack_runtime benchmark::benchmark)

# q4/q8/bf16 matmul at 1B-model shapes with the memory bandwidth probe. The
# test-package helpers provide round-to-nearest quantized weights.
add_executable(matmul_bench ${CMAKE_CURRENT_LIST_DIR}/matmul_bench.cc
  ${CMAKE_SOURCE_DIR}/tests/runtime/test_package.cc)
target_include_directories(matmul_bench PRIVATE ${CMAKE_SOURCE_DIR}/tests)
target_link_libraries(matmul_bench PRIVATE llmpack_runtime benchmark::benchmark)
