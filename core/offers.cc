#include "core/offers.h"
