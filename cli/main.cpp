#include "cli/cli.h"

int main(int argc, char** argv) { return assay::cli::Run(argc, argv); }
