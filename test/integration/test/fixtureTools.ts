/** The fixture server's tools, in the order it lists them. */
export const fixtureToolNames = [
  'server_info',
  'echo',
  'append_line',
  'set_content',
  'remove_file',
  'read_text',
  'wait',
  'run_node',
] as const;
