#include "core/programme.h"
