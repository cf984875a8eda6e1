// Writes the parser's test frames (tests/unit/parser_cases.h) as the fuzzer's seed corpus, one
// file per case, into the folder given as the only argument.
#include <cstdio>
#include <fstream>
#include <string>

#include "parser_cases.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FOLDER\n", argv[0]);
    return 2;
  }
  int written = 0;
  for (const sluice::test::ParseCase& parse_case : sluice::test::all_cases()) {
    std::ofstream file(std::string(argv[1]) + "/" + std::to_string(written++) + ".frame", std::ios::binary);
    file.write(reinterpret_cast<const char*>(parse_case.frame.data()),
               static_cast<std::streamsize>(parse_case.frame.size()));
    if (!file) {
      std::perror("write_seed_corpus: cannot write a corpus file");
      return 1;
    }
  }
  std::printf("write_seed_corpus: %d frames\n", written);
  return 0;
}
