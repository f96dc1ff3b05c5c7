#include "core/time_util.h"
