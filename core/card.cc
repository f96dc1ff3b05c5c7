#include "core/card.h"
