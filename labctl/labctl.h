// labctl's command line: `run`, `agents`, `results list|show|export`, `lab up|status|down`.
// main() only builds the Environment; everything else is here, so tests drive the real
// parser with fake streams and a mock controller.
#ifndef LABCTL_LABCTL_H_
#define LABCTL_LABCTL_H_

#include "labctl/command_context.h"

namespace lab::labctl {

// Parses `argv`, runs the command it names and returns the process exit code (see
// command_context.h: 0, 1, 2 bad usage, 3 partial run, 130 interrupted). Bad usage is
// detected before anything is started or any call is made. Help goes to env.out.
// env.out and env.err must be set; a missing env.interrupt means "never interrupted".
int RunLabctl(int argc, const char* const* argv, Environment& env);

}  // namespace lab::labctl

#endif  // LABCTL_LABCTL_H_
