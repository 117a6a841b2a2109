# quant_quality: KL / top-1 / perplexity of a quantized package against its
# float original through dequantized ("fake quant") weights.
add_executable(quant_quality ${CMAKE_CURRENT_LIST_DIR}/quant_quality.cc)
target_link_libraries(quant_quality PRIVATE llmpack_quantize)
