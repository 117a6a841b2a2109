add_executable(llmsynth ${CMAKE_CURRENT_SOURCE_DIR}/llmsynth.cc)
target_link_libraries(llmsynth PRIVATE llmpack_convert CLI11::CLI11)
