add_executable(tokenizer_bench ${CMAKE_CURRENT_LIST_DIR}/tokenizer_bench.cc)
target_link_libraries(tokenizer_bench PRIVATE llmpack_tokenizer benchmark::benchmark)
target_compile_definitions(tokenizer_bench PRIVATE
  LLMPACK_SHARED_DIR="${LLMPACK_SHARED_DIR}")
