# The streaming runtime: kernels, block loader, forward pass, and the
# verification library behind llmverify.
set(LLMPACK_RUNTIME_DIR ${CMAKE_CURRENT_LIST_DIR})

add_library(llmpack_runtime
  ${LLMPACK_RUNTIME_DIR}/block_loader.cc
  ${LLMPACK_RUNTIME_DIR}/diagnose.cc
  ${LLMPACK_RUNTIME_DIR}/eval.cc
  ${LLMPACK_RUNTIME_DIR}/generate.cc
  ${LLMPACK_RUNTIME_DIR}/kernels_avx512vnni.cc
  ${LLMPACK_RUNTIME_DIR}/kernels_hwy.cc
  ${LLMPACK_RUNTIME_DIR}/kernels_scalar.cc
  ${LLMPACK_RUNTIME_DIR}/model.cc
  ${LLMPACK_RUNTIME_DIR}/npy.cc
  ${LLMPACK_RUNTIME_DIR}/package.cc
  ${LLMPACK_RUNTIME_DIR}/quant_matmul.cc
  ${LLMPACK_RUNTIME_DIR}/reference.cc
  ${LLMPACK_RUNTIME_DIR}/rope.cc
  ${LLMPACK_RUNTIME_DIR}/thread_pool.cc
  ${LLMPACK_RUNTIME_DIR}/verify.cc
)
target_include_directories(llmpack_runtime PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(llmpack_runtime PUBLIC llmpack_core llmpack_quant hwy::hwy PkgConfig::ZSTD Threads::Threads)
