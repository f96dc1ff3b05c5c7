#include "core/pricing.h"
