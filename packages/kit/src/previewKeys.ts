// The `_meta` keys of the preview protocol, in a module of their own so a client can name them
// without loading the kit's server code (see core.ts).

/** `_meta` key of a `tools/call` that asks only for the effect the call would have (`true`). */
export const PREVIEW_META_KEY = 'keel/preview';
/**
 * `_meta` key of a real `tools/call` bound to a preview: the `binding` it returned. The call is
 * refused (PRECONDITION_FAILED) if the effect, recomputed when it runs, has another binding.
 */
export const EXPECT_PREVIEW_META_KEY = 'keel/expect-preview';
/**
 * The `keel/expect-preview` value of a call whose preview was an error (its plan refused it): the
 * real call then changes nothing or is refused — if its plan succeeds now, the state moved since the
 * preview, and an effect nobody sized is not applied.
 */
export const REFUSED_PREVIEW_BINDING = 'refused';
/**
 * `_meta` key of a tool in `tools/list` (`true`) that changes no file under the server's roots,
 * whatever its input: its preview would be empty and complete, so a client may size the call
 * without asking. The server checks the declaration on every real call and refuses, having changed
 * nothing, a call whose plan would break it.
 */
export const CHANGES_NO_FILES_META_KEY = 'keel/changes-no-files';
