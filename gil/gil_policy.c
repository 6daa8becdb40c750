/*
** gil_policy.c: the GIL's policies by name, for --gil-policy,
** sys.setgilpolicy and gilua_setgilpolicy.
*/
#include <string.h>

#include "gil.h"


const gil_policy *const gil_policies[] = {
  &gil_policy_new, &gil_policy_old, &gil_policy_io_priority,
  &gil_policy_fifo, NULL
};


const gil_policy *gil_findpolicy (const char *name) {
  int i;
  for (i = 0; gil_policies[i]; i++)
    if (strcmp(gil_policies[i]->name, name) == 0) return gil_policies[i];
  return NULL;
}
