// Tokenizer factory: picks the implementation for tokenizer.ggml.model.
#include "model/tokenizer.h"

#include "common/error.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_spm.h"

namespace mixserve {

std::unique_ptr<Tokenizer> Tokenizer::create(Vocab vocab) {
  if (vocab.model == "llama") return std::make_unique<SpmTokenizer>(std::move(vocab));
  if (vocab.model == "gpt2") return std::make_unique<BpeTokenizer>(std::move(vocab));
  fail(ErrorCode::kUnimplemented, "tokenizer model '", vocab.model,
       "' is not supported (supported: 'llama' = SentencePiece, 'gpt2' = byte-level BPE)");
}

}  // namespace mixserve
