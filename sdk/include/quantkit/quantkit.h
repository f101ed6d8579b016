/* This file implements the one include a plugin needs: the whole SDK. */
#ifndef QUANTKIT_QUANTKIT_H
#define QUANTKIT_QUANTKIT_H
#include "version.h"
#include "status.h"
#include "tensor.h"
#include "params.h"
#include "graph.h"
#include "quant.h"
#include "host.h"
#include "plugin.h"
#include "observer.h"
#include "fakequant.h"
#include "fusion.h"
#include "backend.h"
#endif
