/* agent.c: the VMG agent's main loop (docs/vehicle.md). */
#include "agent/agent.h"
