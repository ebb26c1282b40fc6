//! Precedence, one row per test: `--secrets` > inherited > files (later >
//! earlier), and which entry is read when the environment names a variable
//! twice.

use super::*;

#[test]
fn secrets_flags_beat_inherited_variables_and_files() {
    let c = Harness::new("flags-win");
    c.file("a.env", "SHARED=from-file\nONLY_FILE=f\n");
    let (_, env) = ran(
        &c,
        c.agent()
            .env("SHARED", "from-env")
            .env("ONLY_ENV", "e")
            .args(["--secrets-file", "a.env", "--secrets", "SHARED=from-flag"])
            .args(["--secrets=ONLY_FLAG=x=y"]),
    );
    assert_eq!(
        env,
        with_path(&[
            "SHARED=from-flag",
            "ONLY_FILE=f",
            "ONLY_ENV=e",
            "ONLY_FLAG=x=y"
        ])
    );
}

#[test]
fn inherited_variables_beat_dotenv_files_like_docker_run_e_over_a_mounted_file() {
    let c = Harness::new("inherited-wins");
    c.file(".env.local", "A=from-file\nB=from-file\nC=${A}\n");
    let (_, env) = ran(&c, c.agent().env("A", "from-env"));
    // `${A}` sees what the command gets for A, as load_dotenv does.
    assert_eq!(env, with_path(&["A=from-env", "B=from-file", "C=from-env"]));
}

#[test]
fn later_secrets_files_beat_earlier_ones_and_interpolation_follows_the_same_order() {
    let c = Harness::new("later-file-wins");
    c.file("one.env", "A=one\nB=one\nC=one\n");
    c.file("two.env", "B=two\nFROM_EARLIER=${C}\nFROM_SAME=${B}\n");
    let (_, env) = ran(
        &c,
        c.agent()
            .args(["--secrets-file", "one.env", "--secrets-file", "two.env"]),
    );
    assert_eq!(
        env,
        with_path(&[
            "A=one",
            "B=two",
            "C=one",
            "FROM_EARLIER=one",
            "FROM_SAME=two"
        ])
    );
}

#[test]
fn a_variable_twice_in_the_environment_is_read_as_its_first_entry_by_agent_init_and_the_child() {
    let c = Harness::new("duplicates");
    // Only execve itself can hand a process two entries of one name.
    let exec = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
def arr(items):
    a = (ctypes.c_char_p * (len(items) + 1))(*[i.encode() for i in items])
    a[len(items)] = None
    return a
argv = sys.argv[1:]
env = ["PATH=/usr/local/bin:/usr/bin:/bin", "DUP=first", "DUP=second",
       "AGENT_INIT_REQUIRE=DUP", "AGENT_INIT_REQUIRE=NOT_SET_ANYWHERE"]
libc.execve(argv[0].encode(), arr(argv), arr(env))
sys.exit("execve failed: %d" % ctypes.get_errno())
"#;
    let mut args: Vec<OsString> = vec!["-c".into(), exec.into(), support::bin().into()];
    args.extend(c.capture());
    let out = std::process::Command::new("python3")
        .args(&args)
        .current_dir(&c.dir)
        .output()
        .unwrap();
    // The first AGENT_INIT_REQUIRE (DUP) is the one read, so the run passes.
    assert_ran(&out, &c);
    assert_eq!(child_env(&c), with_path(&["DUP=first"]));
}
