# Bash completion for sluicectl, written by `sluicectl completion bash`.
# Install it as /usr/share/bash-completion/completions/sluicectl, or source it from ~/.bashrc.
_sluicectl() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
  local path="sluicectl" word i words
  # Find the subcommand path typed so far, skipping the value after each option that takes one.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    case "$word" in
      --check|--encapsulation|--file|--persistence|--socket|--table-size|--timeout|--weight|-f) ((i++)); continue ;;
    esac
    case "$path $word" in
      "sluicectl vip"|"sluicectl vip add"|"sluicectl vip del"|"sluicectl vip list"|"sluicectl backend"|"sluicectl backend add"|"sluicectl backend del"|"sluicectl backend weight"|"sluicectl backend drain"|"sluicectl backend list"|"sluicectl stats"|"sluicectl health"|"sluicectl lookup"|"sluicectl digest"|"sluicectl apply"|"sluicectl config"|"sluicectl config show"|"sluicectl completion") path="$path $word" ;;
    esac
  done
  case "$prev" in
    --encapsulation|--persistence|--table-size|--timeout|--weight)
      COMPREPLY=(); return ;;
    --file|--socket|-f)
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --check)
      COMPREPLY=($(compgen -W "tcp http: udp none" -- "$cur")); return ;;
  esac
  case "$path" in
    "sluicectl") words="vip backend stats health lookup digest apply config completion -h --help --socket --timeout --json" ;;
    "sluicectl vip") words="add del list -h --help --socket --timeout --json" ;;
    "sluicectl vip add") words="-h --help --table-size --check --persistence --encapsulation --socket --timeout --json" ;;
    "sluicectl vip del") words="-h --help --socket --timeout --json" ;;
    "sluicectl vip list") words="-h --help --socket --timeout --json" ;;
    "sluicectl backend") words="add del weight drain list -h --help --socket --timeout --json" ;;
    "sluicectl backend add") words="-h --help --weight --socket --timeout --json" ;;
    "sluicectl backend del") words="-h --help --socket --timeout --json" ;;
    "sluicectl backend weight") words="-h --help --socket --timeout --json" ;;
    "sluicectl backend drain") words="-h --help --socket --timeout --json" ;;
    "sluicectl backend list") words="-h --help --socket --timeout --json" ;;
    "sluicectl stats") words="-h --help --rate --socket --timeout --json" ;;
    "sluicectl health") words="-h --help --socket --timeout --json" ;;
    "sluicectl lookup") words="-h --help --socket --timeout --json" ;;
    "sluicectl digest") words="-h --help --socket --timeout --json" ;;
    "sluicectl apply") words="-h --help -f --file --dry-run --socket --timeout --json" ;;
    "sluicectl config") words="show -h --help --socket --timeout --json" ;;
    "sluicectl config show") words="-h --help --socket --timeout --json" ;;
    "sluicectl completion") words="-h --help bash --socket --timeout --json" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _sluicectl sluicectl
