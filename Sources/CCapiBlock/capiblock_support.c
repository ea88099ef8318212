/* CCapiBlock: the C view of capiblock.h for the Swift implementation (CapiBlock). No logic. */
#include "capiblock.h"
