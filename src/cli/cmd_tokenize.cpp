// `mixserve tokenize` and `mixserve detokenize`: inspect a model's tokenizer. Only the vocabulary
// is read, so a vocabulary-only GGUF file works as well as a full model.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "common/error.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/vocab.h"

namespace mixserve::cli {
namespace {

struct TokenizeFlags {
  std::string model;
  std::string text;
  std::string file;
  bool ids_only = false;
  bool bos = false;
  bool no_parse_special = false;
};

struct DetokenizeFlags {
  std::string model;
  std::vector<std::string> ids;
  bool skip_special = false;
};

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  const gguf::File file = gguf::File::open(path);
  return Tokenizer::create(Vocab::from_gguf(file));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kNotFound, "cannot open input file '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Length of the valid UTF-8 character at s[i] (no overlongs, surrogates or values past U+10FFFF),
// or 0 when the bytes there are not one.
size_t utf8_char_length(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  const auto c1 = static_cast<unsigned char>(s[i + 1]);
  if (c1 < lo || c1 > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// A piece for one line of output: quotes, backslashes, control bytes and bytes that are not part
// of a complete UTF-8 character are escaped; valid characters print as themselves.
std::string escape_piece(std::string_view piece) {
  std::string out;
  char hex[8];
  for (size_t i = 0; i < piece.size();) {
    const auto c = static_cast<unsigned char>(piece[i]);
    if (c >= 0x80) {
      const size_t n = utf8_char_length(piece, i);
      if (n > 0) {
        out.append(piece.substr(i, n));
        i += n;
        continue;
      }
    }
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\\': out += "\\\\"; break;
      case '\'': out += "\\'"; break;
      default:
        if (c < 0x20 || c >= 0x7F) {
          std::snprintf(hex, sizeof(hex), "\\x%02X", c);
          out += hex;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  return out;
}

void tokenize(const TokenizeFlags& f) {
  const std::string text = f.file.empty() ? f.text : read_file(f.file);
  const auto tokenizer = load_tokenizer(f.model);
  std::vector<int32_t> ids = tokenizer->encode(text, /*add_special=*/false, !f.no_parse_special);
  if (f.bos) {
    const int32_t bos = tokenizer->vocab().bos_id;
    if (bos < 0) fail(ErrorCode::kInvalidArgument, "--bos: the vocabulary of '", f.model, "' has no BOS token");
    ids.insert(ids.begin(), bos);
  }
  if (f.ids_only) {
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i == 0 ? "%d" : " %d", ids[i]);
    std::printf("\n");
    return;
  }
  for (int32_t id : ids) {
    std::printf("%6d '%s'\n", id, escape_piece(tokenizer->token_to_piece(id, /*show_special=*/true)).c_str());
  }
}

// Ids from the arguments; each argument may also hold several ids separated by spaces or commas.
std::vector<int32_t> parse_ids(const std::vector<std::string>& args, int32_t n_vocab) {
  std::vector<int32_t> ids;
  for (const std::string& arg : args) {
    size_t pos = 0;
    while (pos < arg.size()) {
      const size_t start = arg.find_first_not_of(" ,\t\n", pos);
      if (start == std::string::npos) break;
      size_t end = arg.find_first_of(" ,\t\n", start);
      if (end == std::string::npos) end = arg.size();
      const std::string word = arg.substr(start, end - start);
      long long value = 0;
      size_t used = 0;
      try {
        value = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size()) fail(ErrorCode::kInvalidArgument, "'", word, "' is not a token id");
      if (value < 0 || value >= n_vocab) {
        fail(ErrorCode::kInvalidArgument, "token id ", word, " is outside the vocabulary of ", n_vocab,
             " tokens (valid ids: 0..", n_vocab - 1, ")");
      }
      ids.push_back(static_cast<int32_t>(value));
      pos = end;
    }
  }
  return ids;
}

void detokenize(const DetokenizeFlags& f) {
  const auto tokenizer = load_tokenizer(f.model);
  const std::vector<int32_t> ids = parse_ids(f.ids, tokenizer->vocab().size());
  const std::string text = tokenizer->decode(ids, /*show_special=*/!f.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto tf = std::make_shared<TokenizeFlags>();
  auto* tok = app.add_subcommand("tokenize", "print the tokens of a text (one per line: id and piece)");
  tok->add_option("-m,--model", tf->model, "model or vocabulary file (GGUF; only the tokenizer is read)")->required();
  auto* text = tok->add_option("text", tf->text, "text to tokenize");
  tok->add_option("-f,--file", tf->file, "tokenize the exact bytes of this file instead")->excludes(text);
  tok->add_flag("--ids", tf->ids_only, "print only the ids, space-separated on one line");
  tok->add_flag("--bos", tf->bos, "prepend the beginning-of-sequence token");
  tok->add_flag("--no-parse-special", tf->no_parse_special,
                "treat text that spells a control token (e.g. <|endoftext|>) as plain text");
  tok->callback([tf, tok] {
    if (tf->file.empty() && tok->count("text") == 0) {
      fail(ErrorCode::kInvalidArgument, "tokenize: give the text as an argument or -f FILE");
    }
    tokenize(*tf);
  });

  auto df = std::make_shared<DetokenizeFlags>();
  auto* detok = app.add_subcommand("detokenize", "print the exact bytes that token ids stand for");
  detok->add_option("-m,--model", df->model, "model or vocabulary file (GGUF; only the tokenizer is read)")
      ->required();
  detok->add_option("ids", df->ids, "token ids (separate arguments, or spaces/commas within one)")->required();
  detok->add_flag("--skip-special", df->skip_special, "omit control tokens instead of printing their text");
  detok->callback([df] { detokenize(*df); });
}

}  // namespace mixserve::cli
