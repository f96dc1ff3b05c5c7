#include "core/reversal.h"
