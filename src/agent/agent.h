/* agent.h: the VMG agent, `pqota vehicle` (docs/vehicle.md). */
#ifndef PQOTA_AGENT_AGENT_H
#define PQOTA_AGENT_AGENT_H
#endif
