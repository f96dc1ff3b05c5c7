#include "core/member_state.h"
