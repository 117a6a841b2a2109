add_executable(llmconvert ${CMAKE_CURRENT_SOURCE_DIR}/llmconvert.cc)
target_link_libraries(llmconvert PRIVATE llmpack_commands CLI11::CLI11)
