// Declarations only (include/CFuzzDriver.h): libFuzzer provides the driver in the fuzz build.
#include "CFuzzDriver.h"
