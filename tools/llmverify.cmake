add_executable(llmverify ${CMAKE_CURRENT_SOURCE_DIR}/llmverify.cc)
target_link_libraries(llmverify PRIVATE llmpack_runtime llmpack_verify_against llmpack_tokenizer CLI11::CLI11)
