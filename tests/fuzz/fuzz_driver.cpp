// A bounded random fuzzer for CTest, for the targets in this directory (each defines
// LLVMFuzzerTestOneInput, so the same file also builds with clang's libFuzzer: -fsanitize=fuzzer).
//
//   fuzz_TARGET CORPUS_DIR SECONDS [SEED]
//
// Runs every file of the corpus, then mutates corpus entries at random (bit flips, bytes that are not
// UTF-8, NULs, inserted tokens, cuts, splices) until SECONDS have passed. A crash, an abort or an escaped
// exception fails the test; the input is written to fuzz-crash-N first so that it can join the corpus.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

// The input being run, saved by the terminate handler when an exception escapes.
std::string current;

void save_current() {
  std::string name = "fuzz-crash-" + std::to_string(::getpid());
  std::ofstream(name, std::ios::binary) << current;
  std::fprintf(stderr, "fuzz: input that failed written to %s\n", name.c_str());
}

void run(const std::string& input) {
  current = input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

std::string mutate(std::string input, const std::vector<std::string>& corpus, std::mt19937_64& random) {
  static const std::vector<std::string> tokens = {
      "\xff", "\xc3", "\xed\xa0\x80", std::string(1, '\0'), "\n", "\"", "'", "[", "]", "{", "}", "=", ",",
      "[[stage]]\n", "[pipeline]\n", "name = ", "plugin = ", "object = ", "\"parse\"", "\"port_filter\"",
      "drop_tcp_dst = [", "\\u0000", "\\uD800", "1e999", "-1", "9223372036854775808", "\"op\":", "\"set\"",
      "\"swap\"", "\"reload\"", "\"stage\":", "\"assignments\":[", "null", "true", std::string(300, 'a')};
  const int edits = 1 + random() % 4;
  for (int e = 0; e < edits; ++e) {
    const std::size_t at = input.empty() ? 0 : random() % (input.size() + 1);
    switch (random() % 6) {
      case 0:
        if (!input.empty()) input[at % input.size()] ^= static_cast<char>(1u << (random() % 8));
        break;
      case 1:
        input.insert(at, 1, static_cast<char>(random() % 256));
        break;
      case 2:
        if (!input.empty()) input.erase(at % input.size(), 1 + random() % 16);
        break;
      case 3:
        input.insert(at, tokens[random() % tokens.size()]);
        break;
      case 4: {
        const std::string& other = corpus[random() % corpus.size()];
        if (!other.empty()) input.insert(at, other.substr(random() % other.size(), 1 + random() % 64));
        break;
      }
      default:
        input.resize(at);
        break;
    }
  }
  return input;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR SECONDS [SEED]\n", argv[0]);
    return 2;
  }
  std::set_terminate([] {
    save_current();
    std::abort();
  });
  std::vector<std::string> corpus;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    std::ifstream in(entry.path(), std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (corpus.empty()) corpus.emplace_back();
  const auto budget = std::chrono::duration<double>(std::atof(argv[2]));
  const std::uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : std::random_device{}();
  std::printf("fuzz: %zu corpus inputs, %.0f s, seed %llu\n", corpus.size(), budget.count(),
              static_cast<unsigned long long>(seed));
  for (const auto& input : corpus) run(input);
  std::mt19937_64 random(seed);
  const auto started = std::chrono::steady_clock::now();
  std::uint64_t runs = corpus.size();
  while (std::chrono::steady_clock::now() - started < budget) {
    run(mutate(corpus[random() % corpus.size()], corpus, random));
    ++runs;
  }
  std::printf("fuzz: %llu inputs run, none failed\n", static_cast<unsigned long long>(runs));
  return 0;
}
