/*
 * plexus/plexus.h - umbrella header for module authors
 *
 * Include this (or plexus/module.h, which is all there is in ABI 1.0).
 */
#ifndef PLEXUS_PLEXUS_H
#define PLEXUS_PLEXUS_H
#include "plexus/module.h"
#endif
