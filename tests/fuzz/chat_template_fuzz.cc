// Chat template parse + render (tokenizer::RenderChatTemplate) over a fixed
// system/user/assistant conversation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  const std::string source(fuzz::AsText(data, size));
  static const std::vector<tokenizer::ChatMessage> messages = {
      {"system", "Be brief."},
      {"user", "Hello {{ there }} {% if %}"},
      {"assistant", "Hi!"},
      {"user", "Again"}};
  tokenizer::ChatTemplateOptions options;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  for (bool prompt : {true, false}) {
    options.add_generation_prompt = prompt;
    auto text = tokenizer::RenderChatTemplate(source, messages, options);
    if (!text.ok()) break;
  }
  return 0;
}
