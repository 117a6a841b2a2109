add_executable(llmquant ${CMAKE_CURRENT_SOURCE_DIR}/llmquant.cc)
target_link_libraries(llmquant PRIVATE llmpack_quantize CLI11::CLI11)
