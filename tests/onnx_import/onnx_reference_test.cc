// Acceptance: packages converted from the ONNX fixtures, with and without
// config.json beside them, pass the runtime's reference parity (what
// `llmverify --reference` runs) with the default gates, the same gates the
// Hugging Face path must pass.
#include <sstream>

#include "commands/verify_command.h"
#include "gtest/gtest.h"
#include "onnx_import/onnx_convert.h"
#include "onnx_import/onnx_test_util.h"
#include "support/test_paths.h"

namespace llmpack::onnx_import {
namespace {
namespace fs = std::filesystem;
using ::llmpack::testing::OnnxFixture;
using ::llmpack::testing::ScopedTempDir;

TEST(OnnxReference, ConvertedFixturesPassReferenceParity) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  for (const OnnxFixture& fx : ::llmpack::testing::OnnxFixtures()) {
    for (bool with_config : {false, true}) {
      const std::string label =
          fx.label + (with_config ? "_config" : "_inferred");
      SCOPED_TRACE(label);
      const fs::path model = ::llmpack::testing::StageFixture(
          fx, tmp.path() / ("in_" + label), with_config);
      convert::WritePackageOptions options;
      options.output_dir = tmp.path() / ("pkg_" + label);
      absl::StatusOr<Manifest> converted = ConvertOnnx(model, options);
      ASSERT_TRUE(converted.ok()) << converted.status();

      commands::VerifyRequest verify;
      verify.package = options.output_dir;
      verify.reference = fx.hf_dir.parent_path() / "reference.json";
      std::ostringstream log;
      verify.out = &log;
      absl::StatusOr<commands::VerifyOutcome> outcome =
          commands::RunVerify(verify);
      ASSERT_TRUE(outcome.ok()) << outcome.status();
      EXPECT_TRUE(outcome->passed) << log.str();
    }
  }
}

}  // namespace
}  // namespace llmpack::onnx_import
