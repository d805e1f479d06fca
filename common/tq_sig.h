/* tq_sig: typed task signatures (docs/SECURITY.md#signatures).
 *
 * A task declares its parameters when it is registered, as a short spec:
 *
 *     "a:int, b:int=0, name:string[1..64]?, ratio:float[0..1], tags:array[..10], opts:any?"
 *
 * Each parameter is NAME:TYPE, then optional bounds [MIN..MAX] (value range
 * for int/float, length for string/array/object; either side may be
 * omitted), then either =DEFAULT (a JSON literal; the parameter becomes
 * optional) or ? (optional, null when omitted). Types: int, float (ints are
 * accepted), string, bool, array, object, null, any.
 *
 * Workers validate every message against the signature before calling the
 * task, and publish signatures (as JSON, tq_sig_to_json) so clients can
 * validate before enqueueing. Both ends use tq_sig_bind. */
#ifndef TQ_SIG_H
#define TQ_SIG_H

#include <jansson.h>
#include <stddef.h>

#define TQ_SIG_MAX_PARAMS 64

typedef struct tq_sig tq_sig;

/* Parse a spec; NULL with a reason in err. "" is a task without parameters. */
tq_sig *tq_sig_parse(const char *spec, char *err, size_t errlen);
/* From the published JSON form; NULL with a reason in err. */
tq_sig *tq_sig_from_json(const json_t *j, char *err, size_t errlen);
/* The published JSON form: [{"name","type","optional","default","min","max"}].
 * New reference. */
json_t *tq_sig_to_json(const tq_sig *s);
/* The canonical spec text (malloc'd), for listings. */
char *tq_sig_to_string(const tq_sig *s);
size_t tq_sig_count(const tq_sig *s);
void tq_sig_free(tq_sig *s);

/* Check args (array) and kwargs (object) of a call to `task` against s.
 * On success returns 0 and, if bound is not NULL, sets *bound to a new array
 * holding one value per parameter in order (positional, keyword or default;
 * null for an omitted optional one). On failure returns -1 and writes a
 * precise reason naming the task and the parameter into err, e.g.
 * "add: argument 'b' must be int, got string \"x\"". */
int tq_sig_bind(const tq_sig *s, const char *task, const json_t *args, const json_t *kwargs,
                json_t **bound, char *err, size_t errlen);

#endif
