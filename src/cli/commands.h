#ifndef TREATY_CLI_COMMANDS_H
#define TREATY_CLI_COMMANDS_H

/* Each returns the process exit status.  argv[0] is the command name. */
int tr_cmd_serve(int argc, char **argv);
int tr_cmd_check(int argc, char **argv);
int tr_cmd_token(int argc, char **argv);
int tr_cmd_audit(int argc, char **argv);
int tr_cmd_analyze(int argc, char **argv);

#endif
