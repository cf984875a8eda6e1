// Writes the parser's test frames (tests/unit/parser_cases.h) as the fuzzer's seed corpus, one
// file per case, into the folder given as the only argument. Frames too big for the egress MTU
// are added, so the fuzzer starts from the too-big replies too.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "parser_cases.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FOLDER\n", argv[0]);
    return 2;
  }
  using namespace sluice::test;
  std::vector<Bytes> frames;
  for (const ParseCase& parse_case : all_cases()) frames.push_back(parse_case.frame);
  frames.push_back(tcp4_frame({.flags = kAck, .payload_size = 1460}, {.dont_fragment = true}));
  frames.push_back(tcp4_frame({.flags = kAck, .payload_size = 1460}, {.dont_fragment = true}, {{}}));
  frames.push_back(tcp6_frame({.flags = kAck, .payload_size = 1440}));
  frames.push_back(tcp6_frame({.flags = kAck, .payload_size = 1173}));  // 1233 bytes of IPv6

  int written = 0;
  for (const Bytes& frame : frames) {
    std::ofstream file(std::string(argv[1]) + "/" + std::to_string(written++) + ".frame", std::ios::binary);
    file.write(reinterpret_cast<const char*>(frame.data()), static_cast<std::streamsize>(frame.size()));
    if (!file) {
      std::perror("write_seed_corpus: cannot write a corpus file");
      return 1;
    }
  }
  std::printf("write_seed_corpus: %d frames\n", written);
  return 0;
}
